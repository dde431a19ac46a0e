"""A small bounded load on ``lensflow serve`` (the TF Serving stand-in): concurrent clients mixing
real images with oversized, empty and non-image requests get the in-process answers or clear
400s, and the server keeps serving. The full-size run is ``make bench`` (serving_load)."""
from lensflow.serving import load
from lensflow.serving.tests.helpers import http

CLIENTS, PER_CLIENT, BAD_EVERY = 4, 12, 3


def test_concurrent_good_and_bad_requests_never_stop_the_server(stand_in, sample_images,
                                                                reference_outputs):
    url = f"{stand_in.rest_url}/v1/models/{stand_in.store.model_name}"
    images = [data for _, data in sample_images]
    expected = [int(i) for i in reference_outputs["class_ids"]]
    result = load.run(url, images, expected, CLIENTS, PER_CLIENT, bad_every=BAD_EVERY,
                      oversized_bytes=3 * 1024 * 1024, timeout=60, max_seconds=240)
    assert result.unexpected_count == 0, result.unexpected
    assert result.requests == CLIENTS * PER_CLIENT
    assert result.good == CLIENTS * PER_CLIENT * (BAD_EVERY - 1) // BAD_EVERY
    assert set(result.refused_as_expected) == {"oversized", "empty", "not_an_image"}
    status, body = http(url)
    assert status == 200 and body["model_version_status"][0]["state"] == "AVAILABLE"
