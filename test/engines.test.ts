/**
 * The Node versions the project claims (package.json engines.node, the README, CI) are ones every
 * installed dependency accepts, and no narrower than they allow: the floor is the lowest version that
 * all of them take.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as semver from 'semver';

const root = path.resolve(__dirname, '..', '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines: { node: string } };
const ours = pkg.engines.node;

/** engines.node of every package under node_modules (nested copies too), as [name, range]. */
function installedEngines(): [string, string][] {
  const found: [string, string][] = [];
  const visit = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const name of fs.readdirSync(dir)) {
      if (name.startsWith('.')) continue;
      const p = path.join(dir, name);
      if (name.startsWith('@')) {
        visit(p);
        continue;
      }
      const manifest = path.join(p, 'package.json');
      if (!fs.existsSync(manifest)) continue;
      const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string; engines?: { node?: unknown } };
      if (typeof m.engines?.node === 'string') found.push([m.name ?? p, m.engines.node]);
      visit(path.join(p, 'node_modules'));
    }
  };
  visit(path.join(root, 'node_modules'));
  return found;
}

test('every Node that engines.node allows satisfies every installed dependency', () => {
  const engines = installedEngines();
  assert.ok(engines.length > 50, `expected the dependencies' engines, found ${engines.length}`);
  const refused = engines.filter(([, range]) => semver.validRange(range) && !semver.subset(ours, range, { includePrerelease: false }));
  assert.deepEqual(refused, [], `engines.node '${ours}' admits versions these dependencies refuse`);
});

test('the engines floor is the lowest Node every dependency takes, and README and CI name it', () => {
  const floor = semver.minVersion(ours)!.version;
  // One patch release lower on the same line must be refused by some dependency: the floor is no higher than needed.
  const [major, minor] = floor.split('.').map(Number);
  const below = minor > 0 ? `${major}.${minor - 1}.0` : undefined;
  if (below) {
    const blockers = installedEngines().filter(([, range]) => semver.validRange(range) && !semver.satisfies(below, range));
    assert.ok(blockers.length > 0, `Node ${below} would satisfy every dependency: engines.node '${ours}' is higher than needed`);
  }
  const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
  assert.match(readme, new RegExp(`Node\\.js ${major}\\.${minor} or later`), `README should say "Node.js ${major}.${minor} or later"`);
  const ci = fs.readFileSync(path.join(root, '.ci', 'run'), 'utf8');
  assert.match(ci, new RegExp(`^lowest_node=${floor.replace(/\./g, '\\.')}\\b`, 'm'), `.ci/run should test on Node ${floor}`);
});
