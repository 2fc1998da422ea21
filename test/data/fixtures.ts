/** Small synthetic inputs that the data tests write: CIFAR-10 batches, image files, a tar.gz. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as jpeg from 'jpeg-js';
import { PNG } from 'pngjs';
import * as tar from 'tar';

const made: string[] = [];
process.on('exit', () => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

/** A fresh temporary folder, removed when the test process exits. */
export function tempDir(prefix = 'tlwb-data-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
}

/** The pixel byte the synthetic batches hold for (record, plane, position): a recognisable pattern. */
export function syntheticPixel(globalRecord: number, plane: number, p: number): number {
  return (globalRecord * 7 + plane * 50 + p * 3) & 0xff;
}

/** Label of the n-th record over all synthetic files. */
export function syntheticLabel(globalRecord: number): number {
  return (globalRecord * 3 + 1) % 10;
}

/** One batch file of `records` records starting at global record `first`. */
export function cifarBatchBytes(records: number, first = 0): Buffer {
  const buf = Buffer.alloc(records * 3073);
  for (let r = 0; r < records; r++) {
    const g = first + r;
    buf[r * 3073] = syntheticLabel(g);
    for (let plane = 0; plane < 3; plane++) {
      for (let p = 0; p < 1024; p++) buf[r * 3073 + 1 + plane * 1024 + p] = syntheticPixel(g, plane, p);
    }
  }
  return buf;
}

export const TRAIN_FILES = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'];

/** A cifar-10-batches-bin folder with `perFile` records per training file and `testRecords` test records. */
export function writeCifarFolder(dir: string, perFile = 4, testRecords = 6, meta = true): string {
  fs.mkdirSync(dir, { recursive: true });
  TRAIN_FILES.forEach((f, i) => fs.writeFileSync(path.join(dir, f), cifarBatchBytes(perFile, i * perFile)));
  fs.writeFileSync(path.join(dir, 'test_batch.bin'), cifarBatchBytes(testRecords, 1000));
  if (meta) fs.writeFileSync(path.join(dir, 'batches.meta.txt'), 'c0\nc1\nc2\nc3\nc4\nc5\nc6\nc7\nc8\nc9\n\n');
  return dir;
}

/** cifar-10-binary.tar.gz layout (cifar-10-batches-bin/ at the top) built with the tar package. */
export async function writeCifarArchive(file: string, perFile = 4, testRecords = 6): Promise<Buffer> {
  const staging = tempDir('tlwb-archive-');
  writeCifarFolder(path.join(staging, 'cifar-10-batches-bin'), perFile, testRecords);
  await tar.c({ gzip: true, file, cwd: staging }, ['cifar-10-batches-bin']);
  fs.rmSync(staging, { recursive: true, force: true });
  return fs.readFileSync(file);
}

/** A solid-colour image file (PNG or JPEG by extension). */
export function writeSolidImage(file: string, width: number, height: number, rgb: [number, number, number]): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const data = Buffer.alloc(width * height * 4);
  for (let i = 0; i < width * height; i++) data.set([...rgb, 255], i * 4);
  if (file.toLowerCase().endsWith('.png')) {
    const png = new PNG({ width, height });
    data.copy(png.data);
    fs.writeFileSync(file, PNG.sync.write(png));
  } else {
    fs.writeFileSync(file, jpeg.encode({ data, width, height }, 95).data);
  }
}

/** A PNG chunk with its CRC. */
function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([len, body, crc]);
}

/** A tiny PNG whose header declares width x height (8-bit RGB), with one compressed row of data: a decompression bomb's header. */
export function declaredPng(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr.set([8, 2, 0, 0, 0], 8);
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(1 + width * 3))),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}
