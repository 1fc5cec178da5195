"""The book's recipes in Keras (TensorFlow CPU), the reference for AE Lab's speed and fidelity.

Runs in its own virtual environment (bench/.venv-keras, made by `python -m bench`), never in the
app's. Reads the Fashion-MNIST IDX files itself; prints one JSON object per preset:

    bench/.venv-keras/bin/python bench/keras_ref.py --presets stacked,vae [--epochs N] [--data-dir DIR]

With ``--serve`` it imports TensorFlow and reads the data once, then answers requests, one JSON object a line on
stdin (``{"preset": "conv", "epochs": 1, "batch_ends": true}``) with one JSON line on stdout: `python -m bench`
keeps one such process for all its presets instead of starting TensorFlow (6-8 s) for each. ``batch_ends`` adds
the time at the end of every training batch, per fit and epoch, and each epoch's validation seconds (from its
last batch to its end). ``"handoff": n`` pauses the run after every n training batches: it prints
``{"handoff": batches so far}`` and waits for a line on stdin (:class:`Handoff`), so that `python -m bench` can
train AE Lab's twin as many batches in between.

With ``--lockstep STEPS --lockstep-out F.npz`` it records the simple GAN's first steps for AE Lab to replay
(:func:`gan_lockstep`, `python -m bench.gan --lockstep`).

Differences from the book's TF 2.0 code, for Keras 3: the tied layer reads the kernel's shape instead of
`dense.input`, the VAE's KL term is added by a layer (Keras 3 has no `model.add_loss` on symbolic
tensors), and the hashing AE's noise is a layer of its own (Keras 3's GaussianNoise refuses sigma 15).
Keras 3, like TF 2, divides activity-regulariser penalties by the batch size.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import struct
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

BOOK = {  # preset -> (epochs, batch size)
    "stacked": (10, 32), "tied": (10, 32), "denoising-gaussian": (10, 32), "denoising-dropout": (10, 32),
    "sparse-l1": (10, 32), "sparse-kl": (10, 32), "conv": (5, 32), "vae": (25, 128),
    "linear": (10, 32), "recurrent": (10, 32), "hashing": (10, 32), "linear-3d": (20, 32), "stacked-greedy": (30, 32),
}


def read_idx(path):
    raw = gzip.decompress(open(path, "rb").read()) if path.endswith(".gz") else open(path, "rb").read()
    dims = raw[3]
    shape = struct.unpack(f">{dims}I", raw[4:4 + 4 * dims])
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(data_dir):
    x = read_idx(os.path.join(data_dir, "train-images-idx3-ubyte.gz")).astype(np.float32) / 255.0
    cut = len(x) - len(x) // 10   # validation split 0.1: the last 6,000 images, as AE Lab
    return x[:cut], x[cut:]


class DenseTranspose(layers.Layer):
    """The book's tied layer: the transpose of another Dense layer's kernel, with its own bias."""

    def __init__(self, dense, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.dense, self.activation = dense, keras.activations.get(activation)

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(self.dense.kernel.shape[0],), initializer="zeros")

    def call(self, inputs):
        return self.activation(tf.matmul(inputs, self.dense.kernel, transpose_b=True) + self.bias)


class KLSparsity(keras.regularizers.Regularizer):
    """The book's KL divergence between a target activation rate and each code unit's mean."""

    def __init__(self, weight, target):
        self.weight, self.target = weight, target

    def __call__(self, inputs):
        kl = keras.losses.kl_divergence
        mean = tf.reduce_mean(inputs, axis=0)
        return self.weight * (kl(self.target, mean) + kl(1.0 - self.target, 1.0 - mean))


class Sampling(layers.Layer):
    def call(self, inputs):
        mean, log_var = inputs
        return tf.random.normal(tf.shape(log_var)) * tf.exp(log_var / 2) + mean


class BigGaussianNoise(layers.Layer):
    """Keras 2's GaussianNoise(stddev) in training; Keras 3's refuses a stddev above 1 (the book's hashing AE: 15)."""

    def __init__(self, stddev, **kwargs):
        super().__init__(**kwargs)
        self.stddev = stddev

    def call(self, inputs, training=None):
        return inputs + self.stddev * tf.random.normal(tf.shape(inputs)) if training else inputs


class KLLoss(layers.Layer):
    """Adds the VAE's KL term / 784 (the book's latent loss) and passes the codings through."""

    def call(self, inputs):
        mean, log_var = inputs
        kl = -0.5 * tf.reduce_sum(1 + log_var - tf.exp(log_var) - tf.square(mean), axis=-1)
        self.add_loss(tf.reduce_mean(kl) / 784.0)
        return mean


def generate_3d_data(m, w1=0.1, w2=0.3, noise=0.1):
    """The book's noisy curved 3-D point cloud (np.random.seed(4) before the call, as the notebook)."""
    angles = np.random.rand(m) * 3 * np.pi / 2 - 0.5
    data = np.empty((m, 3))
    data[:, 0] = np.cos(angles) + np.sin(angles) / 2 + noise * np.random.randn(m) / 2
    data[:, 1] = np.sin(angles) * 0.7 + noise * np.random.randn(m) / 2
    data[:, 2] = data[:, 0] * w1 + data[:, 1] * w2 + noise * np.random.randn(m)
    return data


def linear_3d(seed):
    """The book's PCA with a linear autoencoder: 60 centred 3-D points -> 2 -> 3, MSE, SGD 1.5, 20 epochs."""
    np.random.seed(4)
    x = generate_3d_data(60)
    x = (x - x.mean(axis=0)).astype(np.float32)
    keras.utils.set_random_seed(seed)
    encoder = keras.Sequential([keras.Input((3,)), layers.Dense(2)])
    decoder = keras.Sequential([keras.Input((2,)), layers.Dense(3)])
    autoencoder = keras.Sequential([encoder, decoder])
    autoencoder.compile(loss="mse", optimizer=keras.optimizers.SGD(1.5))
    timer = EpochTimer()
    hist = autoencoder.fit(x, x, epochs=20, callbacks=[timer], verbose=0)
    w = decoder.layers[-1].kernel.numpy()     # (2, 3): the decoder's plane is spanned by its rows
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    cos = np.linalg.svd(np.linalg.qr(w.T)[0].T @ vt[:2].T, compute_uv=False)
    return {"preset": "linear-3d", "epochs": 20, "batch_size": 32, "seconds": timer.seconds,
            "loss": hist.history["loss"], "final_mse": float(autoencoder.evaluate(x, x, verbose=0)),
            "codes": encoder.predict(x, verbose=0).tolist(),
            "max_angle_deg": float(np.degrees(np.arccos(np.clip(cos.min(), -1, 1)))), "tensorflow": tf.__version__}


def stacked_greedy(x_train, x_valid, seed, epochs=10, callbacks=()):
    """The book's "training one autoencoder at a time": 784-100-784 (BCE, SGD 1.5), then 100-30-100 on its codes
    (MSE, SGD 0.05), ``epochs`` each (the book: 10), then the stacked autoencoder fine-tuned at SGD 0.1 as long.
    val_loss: each phase's own (BCE, MSE on codes, BCE), 3 x epochs values, as AE Lab's history records them.
    ``callbacks`` go to every fit, after each fit's ``EpochTimer``."""
    keras.utils.set_random_seed(seed)
    flat_train, flat_valid = x_train.reshape(len(x_train), -1), x_valid.reshape(len(x_valid), -1)
    val_loss, seconds, val_acc, batch_ends, validation_seconds = [], [], [], [], []

    def train_autoencoder(n_neurons, train, valid, loss, optimizer, output_activation=None, metrics=()):
        encoder = keras.Sequential([keras.Input((train.shape[-1],)), layers.Dense(n_neurons, activation="selu")])
        decoder = keras.Sequential([keras.Input((n_neurons,)), layers.Dense(train.shape[-1],
                                                                            activation=output_activation)])
        autoencoder = keras.Sequential([encoder, decoder])
        autoencoder.compile(optimizer, loss, metrics=list(metrics))
        timer = EpochTimer()
        hist = autoencoder.fit(train, train, epochs=epochs, validation_data=(valid, valid),
                               callbacks=[timer, *callbacks], verbose=0)
        val_loss.extend(hist.history["val_loss"])
        seconds.extend(timer.seconds)
        batch_ends.append(timer.batch_ends)
        validation_seconds.extend(timer.validation_seconds)
        return encoder, decoder

    enc1, dec1 = train_autoencoder(100, flat_train, flat_valid, "binary_crossentropy", keras.optimizers.SGD(1.5),
                                   "sigmoid", [rounded_accuracy])
    enc2, dec2 = train_autoencoder(30, enc1.predict(flat_train, verbose=0), enc1.predict(flat_valid, verbose=0), "mse",
                                   keras.optimizers.SGD(0.05), "selu")
    stacked = keras.Sequential([keras.Input((28, 28)), layers.Flatten(), enc1, enc2, dec2, dec1,
                                layers.Reshape((28, 28))])
    stacked.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(0.1), metrics=[rounded_accuracy])
    stacked_before = stacked.evaluate(x_valid, x_valid, verbose=0)[0]
    timer = EpochTimer()
    hist = stacked.fit(x_train, x_train, epochs=epochs, validation_data=(x_valid, x_valid),
                       callbacks=[timer, *callbacks], verbose=0)
    val_loss.extend(hist.history["val_loss"])
    seconds.extend(timer.seconds)
    batch_ends.append(timer.batch_ends)
    validation_seconds.extend(timer.validation_seconds)
    val_acc = hist.history["val_rounded_accuracy"]
    return {"preset": "stacked-greedy", "epochs": 3 * epochs, "batch_size": 32, "seconds": seconds,
            "val_loss": val_loss, "stacked_before_finetuning": stacked_before, "val_rounded_acc": val_acc,
            "batch_ends": batch_ends, "validation_seconds": validation_seconds, "tensorflow": tf.__version__}


def gan_models(preset):
    """The book's GAN (30-D codings, dense SELU) or DCGAN (100-D codings, batch norm, tanh output):
    (generator, discriminator, gan, codings size), compiled as the book does, with
    ``discriminator.trainable = False`` before the combined model is compiled."""
    if preset == "gan":
        codings = 30
        generator = keras.Sequential([keras.Input((codings,)), layers.Dense(100, "selu"), layers.Dense(150, "selu"),
                                      layers.Dense(28 * 28, "sigmoid"), layers.Reshape((28, 28))])
        discriminator = keras.Sequential([keras.Input((28, 28)), layers.Flatten(), layers.Dense(150, "selu"),
                                          layers.Dense(100, "selu"), layers.Dense(1, "sigmoid")])
    else:
        codings = 100
        generator = keras.Sequential([
            keras.Input((codings,)), layers.Dense(7 * 7 * 128), layers.Reshape((7, 7, 128)),
            layers.BatchNormalization(),
            layers.Conv2DTranspose(64, 5, strides=2, padding="same", activation="selu"),
            layers.BatchNormalization(),
            layers.Conv2DTranspose(1, 5, strides=2, padding="same", activation="tanh")])
        discriminator = keras.Sequential([
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 5, strides=2, padding="same", activation=layers.LeakyReLU(0.2)), layers.Dropout(0.4),
            layers.Conv2D(128, 5, strides=2, padding="same", activation=layers.LeakyReLU(0.2)), layers.Dropout(0.4),
            layers.Flatten(), layers.Dense(1, "sigmoid")])
    gan = keras.Sequential([generator, discriminator])
    discriminator.compile(loss="binary_crossentropy", optimizer="rmsprop")
    discriminator.trainable = False
    gan.compile(loss="binary_crossentropy", optimizer="rmsprop")
    return generator, discriminator, gan, codings


def gan_labels(batch_size):
    """The book's labels: the discriminator's (fakes 0, then reals 1) and the generator's (all 1)."""
    return tf.constant([[0.0]] * batch_size + [[1.0]] * batch_size), tf.constant([[1.0]] * batch_size)


def gan_step(generator, discriminator, gan, x_batch, z1, z2, labels):
    """One step of the book's ``train_gan``: the discriminator on ``generator(z1)`` then ``x_batch`` (one batch),
    then the generator on ``z2`` through the frozen discriminator; (d_loss, g_loss)."""
    discriminator.trainable = True
    d_loss = discriminator.train_on_batch(tf.concat([generator(z1), x_batch], axis=0), labels[0])
    discriminator.trainable = False
    return d_loss, gan.train_on_batch(z2, labels[1])


def train_gan(preset, x_train, seed, epochs, samples_out, n_samples=5000, batch_size=32):
    """The book's ``train_gan`` loop: per batch, the discriminator on fakes then reals (one batch of 64, labels
    0 and 1), then the generator through the frozen discriminator (labels 1). Reshuffled every epoch, last
    partial batch dropped (the book's ``drop_remainder=True``). Saves ``n_samples`` images in [0, 1] as .npy
    when ``samples_out`` is given."""
    keras.utils.set_random_seed(seed)
    generator, discriminator, gan, codings = gan_models(preset)
    x = x_train if preset == "gan" else x_train.reshape(-1, 28, 28, 1) * 2.0 - 1.0
    labels = gan_labels(batch_size)
    rng, seconds, step_seconds = np.random.default_rng(seed), [], []
    for _ in range(epochs):
        started = time.perf_counter()
        order = rng.permutation(len(x))
        for i in range(len(x) // batch_size):
            x_batch = x[order[i * batch_size:(i + 1) * batch_size]]
            z1, z2 = tf.random.normal((batch_size, codings)), tf.random.normal((batch_size, codings))
            gan_step(generator, discriminator, gan, x_batch, z1, z2, labels)
        seconds.append(time.perf_counter() - started)
        step_seconds.append(seconds[-1] / (len(x) // batch_size))
    if samples_out:
        images = generator.predict(tf.random.normal((n_samples, codings), seed=seed), verbose=0, batch_size=500)
        images = np.asarray(images).reshape(n_samples, 28, 28)
        np.save(samples_out, images if preset == "gan" else (images + 1.0) / 2.0)
    return {"preset": preset, "seed": seed, "epochs": epochs, "batch_size": batch_size, "seconds": seconds,
            "step_seconds": step_seconds, "samples": samples_out, "tensorflow": tf.__version__}


def gan_lockstep(x_train, seed, steps, out, batch_size=32):
    """The book's ``train_gan`` step for the simple GAN, ``steps`` times on the first images in order, with the
    codes drawn by NumPy and recorded: saves (.npz at ``out``) the initial weights (``init0``... in Keras's order,
    kernels as (in, out)), each step's codes ``z1_s`` (the discriminator's fakes) and ``z2_s`` (the generator's),
    its batch ``x_s`` and its two losses ``loss_s``, so that AE Lab can replay the same steps
    (`python -m bench.gan --lockstep`)."""
    keras.utils.set_random_seed(seed)
    generator, discriminator, gan, codings = gan_models("gan")
    rng, record = np.random.default_rng(seed), {}
    for i, w in enumerate(generator.get_weights() + discriminator.get_weights()):
        record[f"init{i}"] = w
    labels = gan_labels(batch_size)
    for s in range(steps):
        x_batch = x_train[s * batch_size:(s + 1) * batch_size]
        z1, z2 = (rng.standard_normal((batch_size, codings)).astype(np.float32) for _ in range(2))
        d_loss, g_loss = gan_step(generator, discriminator, gan, x_batch, z1, z2, labels)
        record.update({f"z1_{s}": z1, f"z2_{s}": z2, f"x_{s}": x_batch, f"loss_{s}": np.array([d_loss, g_loss])})
    np.savez(out, **record)
    return {"preset": "gan", "seed": seed, "lockstep": steps, "record": str(out), "tensorflow": tf.__version__}


def build(preset):
    """(model, optimizer, loss) of an image preset, as the book writes it."""
    model, opt = _build(preset)
    return model, opt, "mse" if preset == "linear" else "binary_crossentropy"


def _build(preset):
    inp = keras.Input((28, 28))
    if preset == "linear":
        x = layers.Dense(784)(layers.Dense(30)(layers.Flatten()(inp)))
        return keras.Model(inp, layers.Reshape((28, 28))(x)), keras.optimizers.Adam(1e-3)
    if preset == "recurrent":
        x = layers.LSTM(30)(layers.LSTM(100, return_sequences=True)(inp))
        x = layers.LSTM(100, return_sequences=True)(layers.RepeatVector(28)(x))
        x = layers.TimeDistributed(layers.Dense(28, activation="sigmoid"))(x)
        return keras.Model(inp, x), keras.optimizers.SGD(0.1)
    if preset == "hashing":
        x = layers.Dense(100, "selu")(layers.Flatten()(inp))
        x = layers.Dense(16, "sigmoid")(BigGaussianNoise(15.0)(x))
        x = layers.Dense(784, "sigmoid")(layers.Dense(100, "selu")(x))
        return keras.Model(inp, layers.Reshape((28, 28))(x)), keras.optimizers.SGD(1.0)
    if preset == "conv":
        x = layers.Reshape((28, 28, 1))(inp)
        for ch in (16, 32, 64):
            x = layers.MaxPool2D(2)(layers.Conv2D(ch, 3, padding="same", activation="selu")(x))
        x = layers.Conv2DTranspose(32, 3, strides=2, padding="valid", activation="selu")(x)
        x = layers.Conv2DTranspose(16, 3, strides=2, padding="same", activation="selu")(x)
        x = layers.Conv2DTranspose(1, 3, strides=2, padding="same", activation="sigmoid")(x)
        return keras.Model(inp, layers.Reshape((28, 28))(x)), keras.optimizers.SGD(1.0)
    if preset == "vae":
        x = layers.Dense(100, "selu")(layers.Dense(150, "selu")(layers.Flatten()(inp)))
        mean, log_var = layers.Dense(10)(x), layers.Dense(10)(x)
        mean = KLLoss()([mean, log_var])
        z = Sampling()([mean, log_var])
        out = layers.Dense(784, "sigmoid")(layers.Dense(150, "selu")(layers.Dense(100, "selu")(z)))
        return keras.Model(inp, layers.Reshape((28, 28))(out)), keras.optimizers.RMSprop()
    x = layers.Flatten()(inp)
    if preset == "denoising-gaussian":
        x = layers.GaussianNoise(0.2)(x)
    if preset == "denoising-dropout":
        x = layers.Dropout(0.5)(x)
    hidden = layers.Dense(100, "selu")
    x = hidden(x)
    if preset.startswith("sparse"):
        reg = keras.regularizers.l1(1e-3) if preset == "sparse-l1" else KLSparsity(0.05, 0.1)
        code = layers.Dense(300, "sigmoid", activity_regularizer=reg)
    else:
        code = layers.Dense(30, "selu")
    x = code(x)
    if preset == "tied":
        x = DenseTranspose(hidden, "sigmoid")(DenseTranspose(code, "selu")(x))
    else:
        x = layers.Dense(784, "sigmoid")(layers.Dense(100, "selu")(x))
    lr = 1.5 if preset in ("stacked", "tied") else 1.0
    return keras.Model(inp, layers.Reshape((28, 28))(x)), keras.optimizers.SGD(lr)


def rounded_accuracy(y_true, y_pred):
    """The book's metric: binary accuracy once both images are rounded to 0 or 1."""
    return keras.metrics.binary_accuracy(tf.round(y_true), tf.round(y_pred))


class EpochTimer(keras.callbacks.Callback):
    """Seconds per epoch, the perf_counter time at the end of each training batch (one list per epoch), and the
    seconds from an epoch's last batch to its end (its validation)."""

    def __init__(self):
        super().__init__()
        self.seconds, self.batch_ends, self.validation_seconds = [], [], []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()
        self.batch_ends.append([])

    def on_train_batch_end(self, batch, logs=None):   # Keras calls every callback's hook anyway: no added sync
        self.batch_ends[-1].append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        now = time.perf_counter()
        self.seconds.append(now - self.started)
        self.validation_seconds.append(now - self.batch_ends[-1][-1])


class Handoff(keras.callbacks.Callback):
    """Every ``every`` training batches (counted over all the fits of a run), says so on stdout (``{"handoff": n}``)
    and waits for a line on stdin. `make bench` meanwhile trains AE Lab's twin as many batches, so the two alternate
    in blocks about a second long and a drift of this machine's speed reaches both (bench.__main__.paired_run).
    Put it after the ``EpochTimer``, whose batch end is then taken before the wait."""

    def __init__(self, every):
        super().__init__()
        self.every, self.batches = every, 0

    def on_train_batch_end(self, batch, logs=None):
        self.batches += 1
        if self.batches % self.every == 0:
            print(json.dumps({"handoff": self.batches}), flush=True)
            sys.stdin.readline()


def run(preset, x_train, x_valid, seed, epochs=None, samples_out=None, batch_ends=False, handoff=None):
    """One preset's run as a JSON-able dict; ``epochs`` None: the book's; ``handoff``: pause every that many
    training batches (:class:`Handoff`)."""
    callbacks = [Handoff(handoff)] if handoff else []
    keras.backend.clear_session()   # a served process runs many presets: start each from a clean graph
    if preset in ("gan", "dcgan"):
        return train_gan(preset, x_train, seed, epochs or 10, samples_out)
    if preset in ("linear-3d", "stacked-greedy"):
        out = linear_3d(seed) if preset == "linear-3d" else stacked_greedy(x_train, x_valid, seed, epochs or 10,
                                                                              callbacks)
    else:
        keras.utils.set_random_seed(seed)
        book_epochs, batch = BOOK[preset]
        epochs = epochs or book_epochs
        model, opt, loss = build(preset)
        bce = loss == "binary_crossentropy"
        model.compile(loss=loss, optimizer=opt, metrics=[rounded_accuracy] if bce else [])
        timer = EpochTimer()
        hist = model.fit(x_train, x_train, epochs=epochs, batch_size=batch, validation_data=(x_valid, x_valid),
                         callbacks=[timer, *callbacks], verbose=0)
        out = {"preset": preset, "epochs": epochs, "batch_size": batch, "seconds": timer.seconds,
               "val_loss": hist.history["val_loss"], "val_rounded_acc": hist.history.get("val_rounded_accuracy"),
               "batch_ends": [timer.batch_ends], "validation_seconds": timer.validation_seconds,
               "tensorflow": tf.__version__}
    if not batch_ends:
        out.pop("batch_ends", None)
        out.pop("validation_seconds", None)
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--presets", default=",".join(BOOK))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--data-dir", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--samples-out", help="gan, dcgan: where to save the generated images (.npy)")
    parser.add_argument("--images", type=int, help="train on the first N training images only (a timing run)")
    parser.add_argument("--serve", action="store_true", help="answer JSON requests from stdin, one a line")
    parser.add_argument("--lockstep", type=int, metavar="STEPS",
                        help="gan: record STEPS steps of the book's loop for AE Lab to replay (--lockstep-out)")
    parser.add_argument("--lockstep-out", help="with --lockstep: where to save the record (.npz)")
    args = parser.parse_args()
    x_train, x_valid = load(args.data_dir)
    x_train = x_train[:args.images]
    if args.lockstep:
        if not args.lockstep_out:
            parser.error("--lockstep needs --lockstep-out")
        print(json.dumps(gan_lockstep(x_train, args.seed, args.lockstep, args.lockstep_out)), flush=True)
        return
    if args.serve:
        print(json.dumps({"ready": True, "tensorflow": tf.__version__}), flush=True)
        for line in sys.stdin:
            request = json.loads(line)
            print(json.dumps(run(request["preset"], x_train, x_valid, request.get("seed", args.seed),
                                 request.get("epochs"), batch_ends=request.get("batch_ends", False),
                                 handoff=request.get("handoff"))), flush=True)
        return
    for preset in args.presets.split(","):
        print(json.dumps(run(preset, x_train, x_valid, args.seed, args.epochs, args.samples_out)), flush=True)


if __name__ == "__main__":
    main()
