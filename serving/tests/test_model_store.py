"""Finding, loading and watching version folders; checked predictions on the real pushed model."""
import os
import shutil

import numpy as np
import pytest

from lensflow.components.pusher import versions
from lensflow.serving.errors import BadRequest, ModelNotFound, NotFound
from lensflow.serving.model_store import AVAILABLE, END, ModelStore, resolve_model_base, resolve_version_dir
from lensflow.serving.saved_model import MAX_STRING_BYTES


def test_resolve_version_dir_accepts_version_base_and_serving_folders(serving_copy):
    base, name, version = serving_copy
    newest = os.path.join(base, str(version))
    versions.publish(newest, base, version - 1)
    assert resolve_version_dir(newest, name) == newest
    assert resolve_version_dir(base, name) == newest
    assert resolve_version_dir(os.path.dirname(base), name) == newest
    assert resolve_model_base(os.path.dirname(base), name) == base


def test_resolve_reports_missing_models_and_version_folders_given_as_base(serving_copy, tmp_path):
    base, name, version = serving_copy
    with pytest.raises(ModelNotFound, match="no numeric version folder"):
        resolve_version_dir(str(tmp_path / "empty"), name)
    with pytest.raises(ModelNotFound, match="is a version folder"):
        resolve_model_base(os.path.join(base, str(version)), name)


def test_store_serves_newest_picks_up_new_and_falls_back_when_removed(serving_copy):
    base, name, old = serving_copy
    store = ModelStore(base, name)
    with pytest.raises(NotFound, match="Could not find any versions"):
        store.status()
    store.refresh()
    assert store.get().version == old
    assert store.status() == [store.status(old)[0]] and store.status(old)[0].state == AVAILABLE

    new = old + 1
    versions.publish(os.path.join(base, str(old)), base, new)
    store.refresh()
    assert store.get().version == new
    assert [(s.version, s.state) for s in store.status()] == [(new, AVAILABLE), (old, END)]
    with pytest.raises(NotFound, match=rf"Specific\({name}, {old}\)"):
        store.get(old)

    shutil.rmtree(os.path.join(base, str(new)))
    store.refresh()
    assert store.get().version == old
    assert [(s.version, s.state) for s in store.status()] == [(new, END), (old, AVAILABLE)]


def test_store_started_on_an_empty_folder_serves_the_first_push(serving_copy, tmp_path):
    base, name, version = serving_copy
    empty = str(tmp_path / "later" / name)
    store = ModelStore(empty, name)
    store.refresh()
    assert store.loaded_versions() == []
    versions.publish(os.path.join(base, str(version)), empty, version)
    store.refresh()
    assert store.loaded_versions() == [version] and store.get().version == version


def test_a_broken_version_is_reported_and_the_previous_one_keeps_serving(serving_copy):
    base, name, old = serving_copy
    store = ModelStore(base, name)
    store.refresh()
    broken = os.path.join(base, str(old + 1))
    os.makedirs(broken)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as fh:
        fh.write(b"not a protobuf")
    store.refresh()
    store.refresh()
    status = store.status(old + 1)[0]
    assert (status.state, status.error_code) == (END, "UNKNOWN")
    assert status.error_message
    assert store.get().version == old
    assert store.status(old)[0].state == AVAILABLE


def test_the_last_version_disappearing_leaves_nothing_to_serve(serving_copy):
    base, name, old = serving_copy
    store = ModelStore(base, name)
    store.refresh()
    shutil.rmtree(os.path.join(base, str(old)))
    store.refresh()
    with pytest.raises(NotFound, match=rf"Latest\({name}\)"):
        store.get()
    assert store.status(old)[0].state == END


def test_loaded_model_reads_class_names_and_signatures(reference_model):
    assert {"serving_default", "serving_examples", "transform_features"} <= \
        set(reference_model.signature_names)
    assert reference_model.class_names and len(set(reference_model.class_names)) == \
        len(reference_model.class_names)


def test_predict_matches_the_signature_called_directly(reference_model, sample_images):
    import tensorflow as tf

    data = [d for _, d in sample_images]
    got = reference_model.predict({"images": data})
    loaded = tf.saved_model.load(reference_model.path)
    direct = loaded.signatures["serving_default"](images=tf.constant(data))
    np.testing.assert_allclose(got["probabilities"], direct["probabilities"].numpy())
    assert list(got["class_names"]) == list(direct["class_names"].numpy())


@pytest.mark.parametrize("inputs, signature, message", [
    ({"images": [b"plain text"]}, None, "not an image the served model can decode"),
    ({"images": [b"\x89PNG\r\n\x1a\ntruncated"]}, None, "truncated PNG file: 17 bytes"),
    ({"pictures": [b"x"]}, None, "do not match the signature"),
    ({"images": [b"x"]}, "no_such_signature", "not found in signature def"),
    ({"images": []}, None, "is empty"),
    ({"images": [[b"x"]]}, None, "has shape"),
    ({"images": [1.5]}, None, "cannot be read as string"),
])
def test_bad_input_is_a_bad_request(reference_model, inputs, signature, message):
    with pytest.raises(BadRequest, match=message):
        reference_model.predict(inputs, signature)


def test_oversized_image_is_refused_before_decoding(reference_model):
    with pytest.raises(BadRequest, match=f"element 1 is {MAX_STRING_BYTES + 1} bytes"):
        reference_model.predict({"images": [b"x", b"\0" * (MAX_STRING_BYTES + 1)]})
