/** ImageResize: TF2 tf.image.resize semantics (half-pixel centres), on cpu and wasm; pass-through at equal size. */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { initBackend, tf } from '../../src/backend';
import { ImageResize } from '../../src/model/layers';

test('bilinear with half-pixel centres (as Keras tf.image.resize), not tfjs Resizing corner alignment', async () => {
  await initBackend({ force: 'wasm', quiet: true });
  const r = [0, 0.25, 0.75, 1];
  const expected = r.flatMap((ri) => r.map((rj) => 2 * ri + rj));
  for (const backend of ['wasm', 'cpu']) {
    await tf.setBackend(backend);
    const layer = new ImageResize({ height: 4, width: 4 });
    const x = tf.tensor4d([0, 1, 2, 3], [1, 2, 2, 1]);
    const y = layer.apply(x) as tf.Tensor;
    assert.deepEqual(y.shape, [1, 4, 4, 1]);
    const got = Array.from(await y.data());
    got.forEach((v, i) => assert.ok(Math.abs(v - expected[i]) < 1e-6, `${backend} [${i}] ${v} vs ${expected[i]}`));
    const same = new ImageResize({ height: 2, width: 2 }).apply(x) as tf.Tensor;
    assert.deepEqual(Array.from(await same.data()), [0, 1, 2, 3]);
    tf.dispose([x, y, same]);
  }
  const symbolic = new ImageResize({ height: 224, width: 224 }).apply(tf.input({ shape: [32, 32, 3] })) as tf.SymbolicTensor;
  assert.deepEqual(symbolic.shape, [null, 224, 224, 3]);
  assert.throws(() => new ImageResize({ height: 0, width: 3 }), /positive integers/);
  assert.deepEqual(new ImageResize({ height: 5, width: 6, name: 'r' }).getConfig().height, 5);
});
