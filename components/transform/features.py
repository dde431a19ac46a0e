"""The single source of feature names, raw (ingested) and transformed."""

# Raw tf.Example features written by ImageExampleGen.
IMAGE_KEY = "image"                # PNG bytes, normalised to 8-bit L or RGB at ingestion
LABEL_KEY = "label"                # class name
PATH_KEY = "path"                  # path relative to the dataset root (or manifest path)
HEIGHT_KEY = "height"              # original height in pixels
WIDTH_KEY = "width"                # original width in pixels
CHANNELS_KEY = "channels"          # original channels (1 grey, 3 colour, 4 with alpha)
HASH_KEY = "content_hash"          # sha256 of the original file bytes (drives the split)
SIZE_BUCKET_KEY = "size_bucket"    # slice: original size bucket (e.g. "<=32px")
BRIGHTNESS_BUCKET_KEY = "brightness_bucket"  # slice: dark / medium / bright

# Transformed features produced by preprocessing_fn.
IMAGE_XF = "image_xf"              # uint8 [H, W, C], resized, one serialised tensor (scaled after, scaling.py)
LABEL_XF = "label_xf"              # int64 class id from the label vocabulary

LABEL_VOCAB_NAME = "label"         # tft vocabulary file holding the class names

# Model inputs and outputs of the exported signatures.
SERVING_IMAGES_INPUT = "images"    # serving_default: batch of encoded image bytes
SERVING_EXAMPLES_INPUT = "examples"  # serving_examples: batch of serialized tf.Examples
PROBABILITIES = "probabilities"
CLASS_IDS = "class_ids"
CLASS_NAMES = "class_names"

SLICE_KEYS = (LABEL_KEY, SIZE_BUCKET_KEY, BRIGHTNESS_BUCKET_KEY)

# Stored beside the exported SavedModel: class names in label-id order.
CLASS_NAMES_FILE = "assets.extra/class_names.json"
