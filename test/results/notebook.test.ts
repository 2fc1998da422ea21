/**
 * notebooks/05-results.ipynb as committed: nbformat 4, the tslab kernelspec, no outputs, short
 * cells, the standard first cells - and its code type-checks against the compiled library the way
 * the kernel sees it (the cells joined into one module, top-level await allowed).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { projectRoot } from '../../src/config';

const file = path.join(projectRoot, 'notebooks', '05-results.ipynb');
const nb = JSON.parse(fs.readFileSync(file, 'utf8'));
const src = (c: { source: string | string[] }) => (Array.isArray(c.source) ? c.source.join('') : c.source);
const codeCells = nb.cells.filter((c: { cell_type: string }) => c.cell_type === 'code');

test('notebook 05 is committed clean: nbformat 4, tslab kernel, no outputs, short cells with narrative', () => {
  assert.equal(nb.nbformat, 4);
  assert.deepEqual(nb.metadata.kernelspec, { name: 'tslab', display_name: 'TypeScript', language: 'typescript' });
  assert.equal(nb.metadata.language_info.name, 'typescript');
  for (const c of codeCells) {
    assert.deepEqual(c.outputs, [], 'no outputs');
    assert.equal(c.execution_count, null);
    assert.ok(src(c).split('\n').length <= 10, `short cell: ${src(c)}`);
  }
  assert.equal(src(codeCells[0]).trim(), 'import * as wb from "../dist/src";');
  assert.equal(src(codeCells[1]).trim(), 'const s = await wb.session();');
  assert.ok(nb.cells.filter((c: { cell_type: string }) => c.cell_type === 'markdown').length >= codeCells.length - 2, 'narrative between the cells');
  const all = codeCells.map(src).join('\n');
  for (const call of ['readHistory', 'trainingCurvesSpec', 'evaluateRun', 'saveEvaluation', 'confusionMatrixSpec', 'perClassTable', 'mostConfused', 'topLossGallery', 'runsTable', 'robustnessSpec', 'robustnessRows']) {
    assert.ok(all.includes(call), `uses ${call}`);
  }
});

test('notebook 05 code type-checks against the compiled library', { timeout: 60_000 }, () => {
  const dist = path.join(projectRoot, 'dist', 'src', 'index.d.ts');
  assert.ok(fs.existsSync(dist), 'build first (npm run build)');
  const body = codeCells.map(src).join('\n;\n').replace('"../dist/src"', JSON.stringify(path.join(projectRoot, 'dist', 'src')));
  const name = path.join(projectRoot, 'dist', '05-results.check.ts');
  const source = `${body}\nexport {};\n`;
  const options: ts.CompilerOptions = {
    noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ES2022, moduleResolution: ts.ModuleResolutionKind.Node10,
    esModuleInterop: true, skipLibCheck: true, strict: false, types: ['node'], lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
  };
  const host = ts.createCompilerHost(options);
  const read = host.readFile.bind(host);
  host.readFile = (f) => (path.resolve(f) === name ? source : read(f));
  const exists = host.fileExists.bind(host);
  host.fileExists = (f) => path.resolve(f) === name || exists(f);
  const program = ts.createProgram([name], options, host);
  const diagnostics = ts.getPreEmitDiagnostics(program).filter((d) => d.file?.fileName === name || !d.file);
  const text = diagnostics.map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n')).join('\n');
  assert.equal(diagnostics.length, 0, text);
});
