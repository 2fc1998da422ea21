import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { paths } from '../../src/config';

// Every notebook in notebooks/ is committed clean: the runner's executed copies go to data/runs/.
const dir = paths().notebooks;
const files = fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => f.endsWith('.ipynb')).sort() : [];

for (const f of files) {
  test(`${f} is nbformat 4 with the tslab kernelspec and no outputs`, () => {
    const file = path.join(dir, f);
    let nb;
    try {
      nb = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      assert.fail(`${file}: not valid JSON (${(e as Error).message})`);
    }
    assert.equal(nb.nbformat, 4, `${f}: nbformat`);
    assert.deepEqual(nb.metadata?.kernelspec, { name: 'tslab', display_name: 'TypeScript', language: 'typescript' }, `${f}: kernelspec`);
    assert.equal(nb.metadata?.language_info?.name, 'typescript', `${f}: language_info.name`);
    assert.ok(Array.isArray(nb.cells) && nb.cells.length > 0, `${f}: has cells`);
    if (nb.nbformat_minor >= 5) {
      // nbformat 4.5 requires cell ids (Jupyter warns now and will refuse later).
      const ids = nb.cells.map((c: { id?: string }) => c.id);
      ids.forEach((id: unknown, i: number) => assert.ok(typeof id === 'string' && /^[a-zA-Z0-9-_]{1,64}$/.test(id), `${f}: cell ${i + 1} lacks a valid id (nbformat 4.5)`));
      assert.equal(new Set(ids).size, ids.length, `${f}: duplicate cell ids`);
    }
    nb.cells.forEach((c: { cell_type: string; outputs?: unknown[]; execution_count?: number | null }, i: number) => {
      if (c.cell_type !== 'code') return;
      assert.deepEqual(c.outputs ?? [], [], `${f}: cell ${i + 1} has committed outputs`);
      assert.equal(c.execution_count ?? null, null, `${f}: cell ${i + 1} has an execution count`);
    });
    const code = nb.cells.filter((c: { cell_type: string }) => c.cell_type === 'code');
    const src = (c: { source: string | string[] }) => (Array.isArray(c.source) ? c.source.join('') : c.source);
    assert.match(src(code[0]), /import \* as wb from "\.\.\/dist\/src";/, `${f}: first code cell imports the compiled library`);
    for (const c of code) assert.doesNotMatch(src(c), /from ["']\.\.\/src/, `${f}: imports ../src (tslab needs ../dist/src)`);
  });
}

test('notebook names are NN-name.ipynb', () => {
  for (const f of files) assert.match(f, /^\d\d-[a-z0-9-]+\.ipynb$/, f);
});
