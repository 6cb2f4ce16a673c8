/**
 * Why an MQTT 5 broker closed the session (the DISCONNECT packet it sends first): a reason code and, sometimes, a
 * reason string. Worth a log line: "session taken over" means another client logged in with the same client id
 * (two daemons sharing mqtt.clientId take the session from each other on every reconnect), and the result is an
 * endless reconnect loop otherwise only visible as "MQTT offline".
 */

/** MQTT 5.0 section 3.14.2.1: the reason codes a server may send in DISCONNECT. */
const SERVER_REASONS: Record<number, string> = {
  0: 'normal disconnection',
  128: 'unspecified error',
  129: 'malformed packet',
  130: 'protocol error',
  131: 'implementation specific error',
  135: 'not authorized',
  137: 'server busy',
  139: 'server shutting down',
  141: 'keep alive timeout',
  142: 'session taken over',
  143: 'topic filter invalid',
  144: 'topic name invalid',
  147: 'receive maximum exceeded',
  148: 'topic alias invalid',
  149: 'packet too large',
  150: 'message rate too high',
  151: 'quota exceeded',
  152: 'administrative action',
  153: 'payload format invalid',
  154: 'retain not supported',
  155: 'QoS not supported',
  156: 'use another server',
  157: 'server moved',
  158: 'shared subscriptions not supported',
  159: 'connection rate exceeded',
  160: 'maximum connect time',
  161: 'subscription identifiers not supported',
  162: 'wildcard subscriptions not supported',
};

export interface DisconnectPacketLike {
  reasonCode?: number;
  properties?: { reasonString?: string; serverReference?: string };
}

/** One line for the log: "session taken over (reason code 142): another client connected with client id X". */
export function describeDisconnect(packet: DisconnectPacketLike, clientId: string): string {
  const code = packet.reasonCode ?? 0;
  let text = `${SERVER_REASONS[code] ?? 'unknown reason'} (reason code ${code})`;
  const why = packet.properties?.reasonString;
  if (why) text += `: ${why}`;
  if (code === 142) text += `; another client connected with the same client id "${clientId}" (mqtt.clientId must be unique per daemon)`;
  const ref = packet.properties?.serverReference;
  if (ref) text += `; server reference ${ref}`;
  return text;
}

/**
 * The broker closed a working connection without a DISCONNECT (MQTT 3.1.1 has none to send; mosquitto 2.0.11 sends
 * none on a takeover) and without a socket error: a session taken over by another client with the same id is the
 * usual cause (then it repeats on every reconnect), a broker restart or an administrator kicking the client others.
 */
export function closedWithoutReason(clientId: string, connectedForMs: number): string {
  return `MQTT connection closed by the broker after ${(connectedForMs / 1000).toFixed(1)} s without a reason: if this repeats `
    + `after every reconnect, another client is probably using the same client id "${clientId}" (session taken over; mqtt.clientId must be unique per daemon)`;
}
