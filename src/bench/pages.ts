import sharp from 'sharp';
import { mulberry32 } from '../onnx/builder.ts';

/** A text line drawn on a page, and the box its glyphs occupy (pixels). */
export interface PageLine { text: string; x: number; y: number; width: number; height: number }

const WORDS = ['serverless', 'inference', 'tiles', 'halo', 'exchange', 'function', 'compute', 'worker', 'master', 'plan', 'chain', 'region', 'OSS', 'latency', 'receipt', 'total', 'invoice', '2026', 'page', 'scan'];

/**
 * A white page of black text lines (seeded words in DejaVu Sans), rendered with sharp: the
 * input of text-detection tests and benchmarks, since no scanned pages can be downloaded.
 */
export async function renderTextPage(width: number, height: number, seed = 1): Promise<{ png: Buffer; lines: PageLine[] }> {
  const rand = mulberry32(seed);
  const font = Math.max(14, Math.round(height / 40));
  const lines: PageLine[] = [];
  const margin = Math.round(width * 0.06);
  for (let y = margin + font; y + font < height - margin; y += Math.round(font * 2.2)) {
    const words: string[] = [];
    const n = 2 + Math.floor(rand() * 6);
    for (let i = 0; i < n; i++) words.push(WORDS[Math.floor(rand() * WORDS.length)]);
    let text = words.join(' ');
    // DejaVu Sans averages at most 0.6 em per character: the line fits.
    const maxChars = Math.floor((width - 2 * margin) / (font * 0.6));
    if (text.length > maxChars) text = text.slice(0, maxChars).trimEnd();
    lines.push({ text, x: margin, y: y - font * 0.8, width: 0, height: font });
  }
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="white"/>${
    lines.map((l) => `<text x="${l.x}" y="${l.y + font * 0.8}" font-family="DejaVu Sans" font-size="${font}" fill="black">${esc(l.text)}</text>`).join('')}</svg>`;
  const page = sharp(Buffer.from(svg));
  // The drawn extent of each line, from the pixels: font metrics are only estimates.
  const { data, info } = await page.clone().greyscale().raw().toBuffer({ resolveWithObject: true });
  const drawn = lines.map((l) => {
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let y = Math.max(0, Math.floor(l.y - font * 0.4)); y < Math.min(info.height, Math.ceil(l.y + font * 1.3)); y++) {
      for (let x = 0; x < info.width; x++) {
        if (data[y * info.width + x] < 128) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
      }
    }
    return { text: l.text, x: x0, y: y0, width: x1 - x0 + 1, height: y1 - y0 + 1 };
  });
  return { png: await page.png().toBuffer(), lines: drawn };
}
