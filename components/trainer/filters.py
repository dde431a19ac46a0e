"""Handcrafted convolution filter banks (edges, blobs, oriented texture) as a Keras layer.

Why the `filter_bank` model family runs this bank *in parallel* with a learned convolution
branch: an edge detector such as Sobel only means "edge" when it is applied to image
intensities. The article this project follows applied its edge filter *in series*, after a
randomly initialised convolution; the filter then differentiates arbitrary learned feature
maps, so its output is no longer an edge map and the domain knowledge it was meant to add is
lost. Applied to the raw image beside the learned branch, the bank hands the classifier
interpretable edge/blob/texture channels, while the learned branch stays free to find
everything else; `responses()` can show what each named kernel saw.

Conventions (TensorFlow's conv2d is cross-correlation, no kernel flip; rows are y pointing
down, columns are x pointing right):
- `sobel_x` = [[-1,0,1],[-2,0,2],[-1,0,1]] (classic, un-normalised, integer); `sobel_y` is its
  transpose. A step from 0 (left) to 1 (right) gives +4 on both columns next to the step and 0
  on flat regions; a step from 0 (top) to 1 (bottom) gives +4 for `sobel_y`.
- `scharr_x` = [[-3,0,3],[-10,0,10],[-3,0,3]] (integer; the same step gives +16); `scharr_y`
  is its transpose.
- `laplacian` = [[0,1,0],[1,-4,1],[0,1,0]] (negative centre: a bright dot gives -4).
- `log` (Laplacian of Gaussian) and the Gabor kernels are built at the full `size`, made
  zero-sum and scaled so their positive weights sum to 4, the same scale as the integer
  Laplacian and Sobel kernels. `log` keeps the Laplacian's negative centre.
- 3x3 kernels are zero-padded and centred to `size`; with 'same' padding their responses equal
  the 3x3 responses. In mode 'init' the zero ring is trainable too.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import tensorflow as tf

KERNEL_NAMES: Tuple[str, ...] = (
    "sobel_x", "sobel_y", "scharr_x", "scharr_y", "laplacian", "log", "gabor")
MODES: Tuple[str, ...] = ("fixed", "init")

_SOBEL_X = np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], dtype=np.float64)
_SCHARR_X = np.array([[-3, 0, 3], [-10, 0, 10], [-3, 0, 3]], dtype=np.float64)
_LAPLACIAN = np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], dtype=np.float64)
_POSITIVE_MASS = 4.0
_GABOR_BASE_WAVELENGTH = 2.5
_GABOR_SIGMA_PER_WAVELENGTH = 0.56
_GABOR_ASPECT = 0.5


def _pad_to(kernel: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad a square odd kernel symmetrically so it is centred in a size x size window."""
    pad = (size - kernel.shape[0]) // 2
    return np.pad(kernel, pad)


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (y, x) relative to the window centre."""
    half = size // 2
    coords = np.arange(-half, half + 1, dtype=np.float64)
    return np.meshgrid(coords, coords, indexing="ij")


def _zero_sum_scaled(kernel: np.ndarray) -> np.ndarray:
    """Remove the mean (no response on flat regions) and scale positive weights to sum to 4."""
    kernel = kernel - kernel.mean()
    return kernel * (_POSITIVE_MASS / kernel[kernel > 0].sum())


def laplacian_of_gaussian(size: int) -> np.ndarray:
    """LoG with sigma = (size - 1) / 4 (1 px for 5x5), negative centre, zero-sum."""
    sigma = (size - 1) / 4.0
    y, x = _grid(size)
    r2 = (x ** 2 + y ** 2) / (2.0 * sigma ** 2)
    return _zero_sum_scaled(-(1.0 - r2) * np.exp(-r2))


def gabor_orientations_deg(count: int) -> List[float]:
    """`count` orientations evenly spaced in [0, 180) degrees."""
    return [180.0 * i / count for i in range(count)]


def gabor_wavelength(scale: int) -> float:
    """Wavelength in pixels of Gabor scale `scale` (1-based): 2.5 px, doubling per scale."""
    return _GABOR_BASE_WAVELENGTH * 2.0 ** (scale - 1)


def gabor_kernel(size: int, theta: float, wavelength: float) -> np.ndarray:
    """Real (cosine) Gabor kernel: stripes vary along direction `theta` (radians from +x, y down).

    The real part of a Gabor has a non-zero mean, i.e. it responds to plain brightness; it is
    made zero-mean so that flat regions give no response and only oriented structure counts.
    """
    y, x = _grid(size)
    x_rot = x * math.cos(theta) + y * math.sin(theta)
    y_rot = -x * math.sin(theta) + y * math.cos(theta)
    sigma = _GABOR_SIGMA_PER_WAVELENGTH * wavelength
    envelope = np.exp(-(x_rot ** 2 + (_GABOR_ASPECT * y_rot) ** 2) / (2.0 * sigma ** 2))
    return _zero_sum_scaled(envelope * np.cos(2.0 * math.pi * x_rot / wavelength))


def _gabor_family(size: int, orientations: int, scales: int) -> List[Tuple[str, np.ndarray]]:
    """All Gabor kernels, scale-major, named like gabor_o45_s2."""
    family = []
    for scale in range(1, scales + 1):
        for degrees in gabor_orientations_deg(orientations):
            kernel = gabor_kernel(size, math.radians(degrees), gabor_wavelength(scale))
            family.append((f"gabor_o{degrees:g}_s{scale}", kernel))
    return family


def _named_kernels(name: str, size: int, orientations: int,
                   scales: int) -> List[Tuple[str, np.ndarray]]:
    """The (name, kernel) pairs one requested name expands to."""
    fixed = {"sobel_x": _SOBEL_X, "sobel_y": _SOBEL_X.T, "scharr_x": _SCHARR_X,
             "scharr_y": _SCHARR_X.T, "laplacian": _LAPLACIAN}
    if name in fixed:
        return [(name, _pad_to(fixed[name], size))]
    if name == "log":
        return [(name, laplacian_of_gaussian(size))]
    return _gabor_family(size, orientations, scales)


def _check_positive_int(value, what: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum}, got {value!r}")


def _validate(names: Sequence[str], size: int, orientations: int, scales: int) -> None:
    """Clear errors for unknown/duplicate names and bad sizes or counts."""
    if isinstance(names, str):
        raise ValueError(f"kernel names must be a list of names, got the string {names!r}")
    if len(names) == 0:
        raise ValueError(f"at least one kernel name is needed; valid names: {list(KERNEL_NAMES)}")
    unknown = [n for n in names if n not in KERNEL_NAMES]
    if unknown:
        raise ValueError(f"unknown kernel name(s) {unknown}; valid names: {list(KERNEL_NAMES)}")
    duplicates = sorted({n for n in names if list(names).count(n) > 1})
    if duplicates:
        raise ValueError(f"kernel name(s) {duplicates} requested more than once")
    _check_positive_int(size, "size", minimum=3)
    if size % 2 == 0:
        raise ValueError(f"size must be odd so kernels have a centre pixel, got {size}")
    _check_positive_int(orientations, "gabor_orientations")
    _check_positive_int(scales, "gabor_scales")


def kernel_bank(names: Sequence[str], size: int = 5, gabor_orientations: int = 4,
                gabor_scales: int = 2) -> Tuple[np.ndarray, List[str]]:
    """Stack the requested kernels as float32 [size, size, n] plus their n names.

    'gabor' expands to gabor_orientations x gabor_scales kernels (scale-major, e.g. gabor_o45_s2);
    smaller kernels are zero-padded and centred to `size`.
    """
    _validate(names, size, gabor_orientations, gabor_scales)
    pairs = [pair for name in names
             for pair in _named_kernels(name, size, gabor_orientations, gabor_scales)]
    stack = np.stack([kernel for _, kernel in pairs], axis=-1).astype(np.float32)
    return stack, [name for name, _ in pairs]


@tf.keras.utils.register_keras_serializable(package="lensflow")
class FilterBank(tf.keras.layers.Layer):
    """Depthwise convolution of every input channel with every named kernel.

    'same' padding, stride 1, no bias; output channel c * n + i is kernel i on input channel c.
    mode='fixed' keeps the kernels as non-trainable weights; mode='init' makes them trainable,
    starting from the handcrafted values.
    """

    def __init__(self, kernels: Sequence[str] = ("sobel_x", "sobel_y", "laplacian"),
                 mode: str = "fixed", size: int = 5, gabor_orientations: int = 4,
                 gabor_scales: int = 2, **kwargs):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {list(MODES)}, got {mode!r}")
        self._bank, self._base_names = kernel_bank(
            list(kernels), size, gabor_orientations, gabor_scales)
        super().__init__(**kwargs)
        self.kernel_list = list(kernels)
        self.mode = mode
        self.size = size
        self.gabor_orientations = gabor_orientations
        self.gabor_scales = gabor_scales
        self.kernel = None

    @property
    def base_names(self) -> List[str]:
        """The n kernel names (Gabor expanded), in the order applied to each channel."""
        return list(self._base_names)

    def build(self, input_shape):
        channels = tf.TensorShape(input_shape)[-1]
        if channels is None:
            raise ValueError("FilterBank needs a known number of input channels")
        tiled = np.tile(self._bank[:, :, None, :], (1, 1, channels, 1))
        self.kernel = self.add_weight(
            name="kernel", shape=tiled.shape, trainable=self.mode == "init",
            initializer=tf.keras.initializers.Constant(tiled))
        super().build(input_shape)

    def call(self, inputs):
        images = tf.cast(inputs, self.compute_dtype)
        kernel = tf.cast(self.kernel, self.compute_dtype)
        return tf.nn.depthwise_conv2d(images, kernel, strides=[1, 1, 1, 1], padding="SAME")

    def compute_output_shape(self, input_shape):
        shape = tf.TensorShape(input_shape)
        return shape[:-1].concatenate([shape[-1] * len(self._base_names)])

    @property
    def kernel_names(self) -> List[str]:
        """Output channel names in order: for each input channel c, each kernel, as 'name/c{c}'."""
        channels = self._built_channels()
        return [f"{name}/c{c}" for c in range(channels) for name in self._base_names]

    @property
    def kernels(self) -> np.ndarray:
        """Current weights as numpy [size, size, channels, n]."""
        self._built_channels()
        return self.kernel.numpy()

    def _built_channels(self) -> int:
        if self.kernel is None:
            raise RuntimeError(
                f"FilterBank {self.name!r} is not built yet: call it on an input first")
        return int(self.kernel.shape[2])

    def get_config(self):
        config = super().get_config()
        config.update({"kernels": list(self.kernel_list), "mode": self.mode, "size": self.size,
                       "gabor_orientations": self.gabor_orientations,
                       "gabor_scales": self.gabor_scales})
        return config


def _find_banks(model: tf.keras.Model) -> List[FilterBank]:
    """Every FilterBank in a model, nested models included."""
    banks = []
    for layer in model.layers:
        if isinstance(layer, FilterBank):
            banks.append(layer)
        elif isinstance(layer, tf.keras.Model):
            banks.extend(_find_banks(layer))
    return banks


def _input_in(model: tf.keras.Model, layer: tf.keras.layers.Layer):
    """The symbolic tensor `layer` receives inside functional/Sequential `model`."""
    if not getattr(model, "_is_graph_network", False):
        raise ValueError(f"responses() needs a functional or Sequential model, got {model.name!r}")
    # A nested model's `.input` is its own Input, so take the node recorded in this graph.
    for nodes in model._nodes_by_depth.values():
        for node in nodes:
            if node.layer is layer:
                return tf.nest.flatten(node.input_tensors)[0]
    raise ValueError(f"layer {layer.name!r} is not connected in model {model.name!r}")


def _prefix(model: tf.keras.Model, layer: tf.keras.layers.Layer):
    """A callable from the model's input to what `layer` receives (identity if it is the input)."""
    target = _input_in(model, layer)
    if any(target is tensor for tensor in model.inputs):
        return lambda x: x
    return tf.keras.Model(model.inputs, target)


def _path_to_bank(model: tf.keras.Model, bank: FilterBank):
    """A callable mapping the model's input to the tensor the bank receives, or None."""
    for layer in model.layers:
        if layer is bank:
            return _prefix(model, layer)
        if isinstance(layer, tf.keras.Model):
            inner = _path_to_bank(layer, bank)
            if inner is not None:
                outer = _prefix(model, layer)
                return lambda x, inner=inner, outer=outer: inner(outer(x))
    return None


def _select_bank(model: tf.keras.Model, bank_name: Optional[str]) -> FilterBank:
    banks = _find_banks(model)
    if bank_name is not None:
        banks = [b for b in banks if b.name == bank_name]
    if len(banks) != 1:
        raise ValueError(f"expected exactly one FilterBank in model {model.name!r} "
                         f"(bank_name={bank_name!r}), found {[b.name for b in banks]}")
    return banks[0]


def responses(layer_or_model, image, bank_name: Optional[str] = None) -> Dict[str, np.ndarray]:
    """Each named kernel's response map on one image (H, W, C): {kernel name: [H, W, C_bank]}.

    With a FilterBank the image is its input; with a model, the image goes through whatever
    precedes the bank (e.g. rescaling) so the maps show what the bank really saw. Channel c of
    a map is that kernel applied to the bank's input channel c.
    """
    batch = tf.convert_to_tensor(image)[tf.newaxis]
    if batch.shape.rank != 4:
        raise ValueError(f"image must be (H, W, C), got shape {tuple(np.shape(image))}")
    if isinstance(layer_or_model, FilterBank):
        bank, bank_input = layer_or_model, batch
    elif isinstance(layer_or_model, tf.keras.Model):
        bank = _select_bank(layer_or_model, bank_name)
        bank_input = _path_to_bank(layer_or_model, bank)(batch)
    else:
        raise ValueError(f"expected a FilterBank or a Keras model, got {type(layer_or_model)}")
    maps = bank(bank_input).numpy()[0]
    n = len(bank.base_names)
    return {name: maps[..., i::n] for i, name in enumerate(bank.base_names)}
