/**
 * Synthetic inspection line: a brushed-metal washer on a dark belt, drawn as SVG and rasterised by sharp.
 * Each part gets a small pose and lighting jitter; a defective part carries one of a few defect kinds, and the
 * same defect geometry is rendered alone into a binary ground-truth mask. Used by the `synthetic://` camera and by
 * the dataset writer (`src/tools/synth-dataset.ts`), so the demo model is trained on exactly what the camera shows.
 */
import sharp from 'sharp';
import { Rng, uniform } from './rng';

export const DEFECT_KINDS = ['scratch', 'dent', 'missing_piece'] as const;
export type DefectKind = (typeof DEFECT_KINDS)[number];

export interface PartImage {
  /** RGB24, row-major, size*size*3 bytes. */
  rgb: Buffer;
  /** Single channel 0/255, size*size bytes; null for a good part. */
  mask: Buffer | null;
  defect: DefectKind | null;
  size: number;
}

interface Pose {
  cx: number;
  cy: number;
  rOuter: number;
  rInner: number;
  rotation: number;
  light: { fx: number; fy: number; hi: number; lo: number };
  textureSeed: number;
  beltSeed: number;
}

const f = (v: number): string => v.toFixed(2);

function circlePath(cx: number, cy: number, r: number): string {
  return `M ${f(cx + r)} ${f(cy)} A ${f(r)} ${f(r)} 0 1 0 ${f(cx - r)} ${f(cy)} A ${f(r)} ${f(r)} 0 1 0 ${f(cx + r)} ${f(cy)} Z`;
}

function ringPath(p: Pose): string {
  return `${circlePath(p.cx, p.cy, p.rOuter)} ${circlePath(p.cx, p.cy, p.rInner)}`;
}

function grey(v: number): string {
  const c = Math.max(0, Math.min(255, Math.round(v)));
  const h = c.toString(16).padStart(2, '0');
  return `#${h}${h}${h}`;
}

function samplePose(rng: Rng, size: number): Pose {
  const jitter = 0.025 * size;
  const scale = uniform(rng, 0.97, 1.03);
  const brightness = uniform(rng, 0.92, 1.06);
  return {
    cx: size / 2 + uniform(rng, -jitter, jitter),
    cy: size / 2 + uniform(rng, -jitter, jitter),
    rOuter: 0.39 * size * scale,
    rInner: 0.155 * size * scale,
    rotation: uniform(rng, -8, 8),
    light: {
      fx: uniform(rng, 0.3, 0.5),
      fy: uniform(rng, 0.25, 0.45),
      hi: 232 * brightness,
      lo: 112 * brightness,
    },
    textureSeed: Math.floor(rng() * 1000),
    beltSeed: Math.floor(rng() * 1000),
  };
}

/** A point on the washer face, away from its edges. */
function pointOnFace(rng: Rng, p: Pose, margin: number): { x: number; y: number } {
  const r = uniform(rng, p.rInner + margin, p.rOuter - margin);
  const a = uniform(rng, 0, 2 * Math.PI);
  return { x: p.cx + r * Math.cos(a), y: p.cy + r * Math.sin(a) };
}

interface DefectShapes {
  /** SVG drawn over the part in the image. */
  image: string;
  /** SVG drawn in white on black for the mask (clipped to the part like the image). */
  mask: string;
  /** Shape removed from the part (drawn black into the part's SVG mask), so the belt shows through. */
  cut?: string;
}

function sampleDefect(rng: Rng, kind: DefectKind, p: Pose, size: number): DefectShapes {
  switch (kind) {
    case 'scratch': {
      const a = pointOnFace(rng, p, 0.03 * size);
      const len = uniform(rng, 0.16, 0.3) * size;
      const ang = uniform(rng, 0, 2 * Math.PI);
      const b = { x: a.x + len * Math.cos(ang), y: a.y + len * Math.sin(ang) };
      const bend = uniform(rng, -0.15, 0.15) * len;
      const c = { x: (a.x + b.x) / 2 - bend * Math.sin(ang), y: (a.y + b.y) / 2 + bend * Math.cos(ang) };
      const w = uniform(rng, 1.6, 3.2) * (size / 256);
      const d = `M ${f(a.x)} ${f(a.y)} Q ${f(c.x)} ${f(c.y)} ${f(b.x)} ${f(b.y)}`;
      const dark = rng() < 0.7;
      const colour = dark ? grey(uniform(rng, 35, 70)) : grey(uniform(rng, 245, 255));
      return {
        image: `<path d="${d}" stroke="${colour}" stroke-width="${f(w)}" stroke-linecap="round" fill="none"/>`,
        mask: `<path d="${d}" stroke="#fff" stroke-width="${f(w + 1)}" stroke-linecap="round" fill="none"/>`,
      };
    }
    case 'dent': {
      const c = pointOnFace(rng, p, 0.05 * size);
      const rx = uniform(rng, 0.03, 0.06) * size;
      const ry = rx * uniform(rng, 0.6, 1.0);
      const rot = uniform(rng, 0, 180);
      const tr = `rotate(${f(rot)} ${f(c.x)} ${f(c.y)})`;
      const core = grey(uniform(rng, 40, 80));
      return {
        image:
          `<radialGradient id="dent" cx="0.45" cy="0.45" r="0.6"><stop offset="0" stop-color="${core}"/>` +
          `<stop offset="0.7" stop-color="${core}" stop-opacity="0.75"/><stop offset="1" stop-color="${core}" stop-opacity="0"/></radialGradient>` +
          `<ellipse cx="${f(c.x)}" cy="${f(c.y)}" rx="${f(rx)}" ry="${f(ry)}" transform="${tr}" fill="url(#dent)"/>`,
        mask: `<ellipse cx="${f(c.x)}" cy="${f(c.y)}" rx="${f(rx * 0.85)}" ry="${f(ry * 0.85)}" transform="${tr}" fill="#fff"/>`,
      };
    }
    case 'missing_piece': {
      // A bite out of the outer rim: the belt shows through where metal should be.
      const a = uniform(rng, 0, 2 * Math.PI);
      const r = uniform(rng, 0.05, 0.09) * size;
      const x = p.cx + (p.rOuter + r * 0.2) * Math.cos(a);
      const y = p.cy + (p.rOuter + r * 0.2) * Math.sin(a);
      return {
        image: '',
        cut: `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r)}" fill="#000"/>`,
        mask: `<circle cx="${f(x)}" cy="${f(y)}" r="${f(r)}" fill="#fff"/>`,
      };
    }
  }
}

function partSvg(p: Pose, size: number, defect: DefectShapes | null): string {
  const ring = ringPath(p);
  const groove = 0.5 * (p.rInner + p.rOuter);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">
<defs>
  <filter id="brush" x="0" y="0" width="100%" height="100%">
    <feTurbulence type="fractalNoise" baseFrequency="${f(0.9 * 256 / size)} ${f(0.02 * 256 / size)}" numOctaves="2" seed="${p.textureSeed}"/>
    <feColorMatrix type="saturate" values="0"/>
  </filter>
  <filter id="belt" x="0" y="0" width="100%" height="100%">
    <feTurbulence type="fractalNoise" baseFrequency="${f(0.6 * 256 / size)}" numOctaves="1" seed="${p.beltSeed}"/>
    <feColorMatrix type="saturate" values="0"/>
  </filter>
  <radialGradient id="light" cx="${f(p.light.fx)}" cy="${f(p.light.fy)}" r="0.75">
    <stop offset="0" stop-color="${grey(p.light.hi)}"/><stop offset="1" stop-color="${grey(p.light.lo)}"/>
  </radialGradient>
  <mask id="part" maskUnits="userSpaceOnUse" x="0" y="0" width="${size}" height="${size}">
    <path fill-rule="evenodd" d="${ring}" fill="#fff"/>${defect?.cut ?? ''}
  </mask>
</defs>
<rect width="${size}" height="${size}" fill="#2a2c30"/>
<rect width="${size}" height="${size}" filter="url(#belt)" opacity="0.12"/>
<g mask="url(#part)">
  <rect width="${size}" height="${size}" fill="url(#light)"/>
  <g transform="rotate(${f(p.rotation)} ${f(p.cx)} ${f(p.cy)})">
    <rect x="${-size / 2}" y="${-size / 2}" width="${2 * size}" height="${2 * size}" filter="url(#brush)" opacity="0.33"/>
  </g>
  <circle cx="${f(p.cx)}" cy="${f(p.cy)}" r="${f(groove)}" stroke="#55585e" stroke-opacity="0.55" stroke-width="${f(1.2 * size / 256)}" fill="none"/>
  <circle cx="${f(p.cx)}" cy="${f(p.cy)}" r="${f(p.rOuter - 1.5)}" stroke="#f4f4f6" stroke-opacity="0.5" stroke-width="${f(1.5 * size / 256)}" fill="none"/>
  <circle cx="${f(p.cx)}" cy="${f(p.cy)}" r="${f(p.rInner + 1.5)}" stroke="#3a3c40" stroke-opacity="0.6" stroke-width="${f(1.5 * size / 256)}" fill="none"/>
  ${defect ? defect.image : ''}
</g>
</svg>`;
}

function maskSvg(p: Pose, size: number, defect: DefectShapes): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" viewBox="0 0 ${size} ${size}">
<defs><clipPath id="part"><path fill-rule="evenodd" clip-rule="evenodd" d="${ringPath(p)}"/></clipPath></defs>
<rect width="${size}" height="${size}" fill="#000"/>
<g clip-path="url(#part)">${defect.mask}</g>
</svg>`;
}

async function rasterRgb(svg: string, size: number): Promise<Buffer> {
  const { data, info } = await sharp(Buffer.from(svg)).removeAlpha().raw().toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== 3) {
    throw new Error(`synthetic part: rasterised ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x3`);
  }
  return data;
}

async function rasterMask(svg: string, size: number): Promise<Buffer> {
  const { data, info } = await sharp(Buffer.from(svg))
    .removeAlpha()
    .greyscale()
    .threshold(128)
    .raw()
    .toBuffer({ resolveWithObject: true });
  if (info.width !== size || info.height !== size || info.channels !== 1) {
    throw new Error(`synthetic mask: rasterised ${info.width}x${info.height}x${info.channels}, expected ${size}x${size}x1`);
  }
  return data;
}

/** Renders one part. The rng is consumed deterministically: same rng state, same part. */
export async function renderPart(rng: Rng, size: number, defect: DefectKind | null): Promise<PartImage> {
  if (!Number.isInteger(size) || size < 32 || size > 4096) throw new Error(`synthetic part: size ${size} out of range 32..4096`);
  const pose = samplePose(rng, size);
  const shapes = defect ? sampleDefect(rng, defect, pose, size) : null;
  const rgb = await rasterRgb(partSvg(pose, size, shapes), size);
  const mask = shapes ? await rasterMask(maskSvg(pose, size, shapes), size) : null;
  return { rgb, mask, defect, size };
}

/** Picks what the next part on the line is: good with probability 1 - defectRate, else a random defect kind. */
export function pickDefect(rng: Rng, defectRate: number): DefectKind | null {
  if (rng() >= defectRate) return null;
  return DEFECT_KINDS[Math.min(DEFECT_KINDS.length - 1, Math.floor(rng() * DEFECT_KINDS.length))];
}
