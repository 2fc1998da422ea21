/**
 * Layers the workbench adds to TF.js, registered with tf.serialization so saved models load again.
 */
import * as tf from '@tensorflow/tfjs';

export interface ImageResizeArgs {
  height: number;
  width: number;
  name?: string;
}

/**
 * Bilinear resize inside the model, as TF2's tf.image.resize (half-pixel centres, no corner alignment),
 * which is what the article's Lambda layer does. (tf.layers.resizing in tfjs 4.22 aligns corners and
 * reports a wrong output shape, so it is not used.) An input already at the target size passes through.
 */
export class ImageResize extends tf.layers.Layer {
  static className = 'ImageResize';
  readonly height: number;
  readonly width: number;

  constructor(args: ImageResizeArgs) {
    super({ name: args.name });
    if (!(Number.isInteger(args.height) && args.height > 0 && Number.isInteger(args.width) && args.width > 0)) {
      throw new Error(`ImageResize: height and width must be positive integers, got ${args.height}x${args.width}`);
    }
    this.height = args.height;
    this.width = args.width;
  }

  computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape {
    const s = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    return [s[0], this.height, this.width, s[3]];
  }

  call(inputs: tf.Tensor | tf.Tensor[]): tf.Tensor {
    const x = (Array.isArray(inputs) ? inputs[0] : inputs) as tf.Tensor4D;
    if (x.shape[1] === this.height && x.shape[2] === this.width) return tf.clone(x);
    return tf.image.resizeBilinear(x, [this.height, this.width], false, true);
  }

  getConfig(): tf.serialization.ConfigDict {
    return { ...super.getConfig(), height: this.height, width: this.width };
  }
}
tf.serialization.registerClass(ImageResize);

/**
 * tfjs-layers computes the 'relu6' activation as minimum(6, relu(x)): two kernels forward and about
 * eight full-size passes backward (the Minimum's gradient towards the constant 6 included). MobileNet
 * has 27 of them, so it uses the single Relu6 kernel instead: the same values, and a gradient that
 * differs only at exactly x = 6 (1 instead of 0, as tf.nn.relu6 in TensorFlow).
 */
const relu6Activation = tf.serialization.SerializationMap.getMap().classNameMap.relu6?.[0] as { prototype: { apply(x: tf.Tensor): tf.Tensor } } | undefined;
if (relu6Activation) relu6Activation.prototype.apply = (x: tf.Tensor) => tf.relu6(x);
