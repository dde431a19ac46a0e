"""Small HTTP and comparison helpers shared by the serving tests."""
import json
import time
import urllib.error
import urllib.request

import numpy as np


def http(url, method="GET", body=None, timeout=30):
    """(status, parsed JSON) of one request; ``body`` is bytes or a JSON-able object."""
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def assert_same_answer(got, expected):
    """Outputs (name -> values) equal the in-process reference: ids and names exactly,
    probabilities to float32 precision."""
    np.testing.assert_allclose(np.asarray(got["probabilities"], np.float32),
                               expected["probabilities"], rtol=1e-6, atol=1e-7)
    assert [int(i) for i in np.asarray(got["class_ids"]).reshape(-1)] == \
        [int(i) for i in expected["class_ids"]]
    assert [_text(n) for n in np.asarray(got["class_names"], object).reshape(-1)] == \
        [_text(n) for n in expected["class_names"]]


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def wait_for(condition, timeout=90.0, interval=0.2):
    """Poll ``condition()`` until truthy; return its value or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
