"""Run Python code in a child process whose files may not grow past a size limit
(``RLIMIT_FSIZE``): the disk-full stand-in of the fault tests. It changes nothing on the system
and only affects the child. SIGXFSZ is ignored there so that an oversized write raises OSError
EFBIG ("File too large") instead of killing the process."""
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

PRELUDE = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
sys.argv = {argv!r}
"""


def run_limited(code: str, limit_bytes: int, argv=(), timeout: float = 600):
    """Run ``code`` (with ``sys.argv[1:] == argv``) under the limit; the CompletedProcess."""
    script = PRELUDE.format(limit=int(limit_bytes), argv=["-c", *map(str, argv)]) + code
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=timeout)
