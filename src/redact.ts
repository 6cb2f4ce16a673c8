/**
 * Credentials out of text that is logged or published. A leaf module (no imports): ingest, publishing and the
 * configuration loader all use it without depending on each other.
 */

/** Removes user:password from every URL in a text (rtsp://user:pw@host/... -> rtsp://***@host/...). */
export function redactUrl(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/gi, '$1***@');
}
