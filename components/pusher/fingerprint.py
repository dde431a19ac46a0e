"""Training fingerprints: what a candidate model was trained from, decided at run time.

A pushed version's record carries its training fingerprint, and ``ServingBaseline`` skips the
versions carrying the candidate's own, so that a re-run is never judged against itself. The
fingerprint joins two parts, each computed where its facts are:

- the data part from the Examples artifact: ``ImageExampleGen`` records ``data_fingerprint``, a
  digest of what it actually ingested (path, label, split and content hash of every example);
- the settings part (ingestion, Transform and Trainer settings, lensflow version), fixed when the
  pipeline is built.

So on Kubeflow, where the data is not visible when the package is compiled, two runs of one
package over different data get different fingerprints.
"""
from __future__ import annotations

import hashlib

DATA_FINGERPRINT = "data_fingerprint"


def data_fingerprint_of(examples) -> str:
    """The Examples artifact's recorded data fingerprint; its URI (unique per ingestion) for an
    artifact ingested before fingerprints were recorded."""
    if examples.has_custom_property(DATA_FINGERPRINT):
        return examples.get_string_custom_property(DATA_FINGERPRINT)
    return "unrecorded:" + examples.uri


def training_fingerprint(data_fingerprint: str, settings_fingerprint: str) -> str:
    """The fingerprint pushed versions are recorded and compared with."""
    return hashlib.sha256(f"{data_fingerprint}\0{settings_fingerprint}".encode()).hexdigest()
