"""Connect to an existing Ray cluster (``--address``): check first, then ``ray.init``.

Every way to get the address wrong costs seconds and one line, before the study folder is
touched: not ``host:port`` (:func:`parse_address`), nothing listening (:func:`probe`, a
plain TCP connect), something listening that is not a Ray head, or a head that wants a
token we do not have. Left to itself, Ray 2.60 retries a refused token for 20 s (one
``InvalidAuthToken`` warning a second, from C++ straight to stderr) and then raises.

Token authentication (Ray 2.60, ``ray/_private/authentication/authentication_token_setup.py``):
``ray start --head`` turns it on when a token already exists (``~/.ray/auth_token``, which
the first local ``ray.init()`` on the machine writes), but a driver given an explicit
address never turns it on by itself (``ray/_private/worker.py``, ``init``: only
``address in (None, "auto")`` does). :func:`auth_environment` does what the CLI users expect:
a token where Ray keeps it (``RAY_AUTH_TOKEN``, ``RAY_AUTH_TOKEN_PATH``, ``~/.ray/auth_token``)
is sent. A head without authentication ignores it, so this never breaks such a head.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from mixerlab.errors import ConfigError

PROBE_TIMEOUT_S = 5  # a LAN or VPN head answers a TCP connect in well under a second
GCS_TIMEOUT_S = 10  # a Ray head answers its first RPC within milliseconds once it listens
FIX = "fix --address / RAY_ADDRESS"


@dataclass
class Connection:
    """A driver connected to a cluster, and what Ray printed meanwhile (for the study's logs)."""

    address: str
    token_source: str | None
    log: str = ""


_live: Connection | None = None


def current() -> Connection | None:
    """The connection :func:`connect` made, if the driver is still connected."""
    import ray

    return _live if _live is not None and ray.is_initialized() else None


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) of a Ray head's GCS, or ConfigError naming the fix."""
    addr = address.strip()
    where = f"--address {address!r}"
    if addr.startswith("ray://"):
        raise ConfigError(f"{where}: Ray Client (ray://) addresses are not supported; give the "
                          "head's GCS address HOST:PORT (port 6379 unless `ray start --head "
                          "--port` said otherwise) and run mixerlab on a machine of the cluster")
    if "://" in addr:
        raise ConfigError(f"{where}: a URL (the dashboard's or the jobs API's?); give the head's "
                          "GCS address HOST:PORT, e.g. 127.0.0.1:6379")
    if addr in ("auto", "local", ""):
        raise ConfigError(f"{where}: not HOST:PORT; give the head's address, e.g. 127.0.0.1:6379, "
                          "or drop --address (and unset RAY_ADDRESS) for mixerlab's own local Ray")
    host, sep, port = addr.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536 or any(
            c in host for c in " /[]") or ":" in host and not addr.startswith("["):
        raise ConfigError(f"{where}: not HOST:PORT; give the head's address, e.g. 127.0.0.1:6379 "
                          "(what `ray start --head` prints)")
    return host, int(port)


def probe(host: str, port: int, timeout: float = PROBE_TIMEOUT_S) -> None:
    """A plain TCP connect: something must listen at ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except socket.gaierror:
        raise ConfigError(f"--address {host}:{port}: cannot resolve host '{host}'; {FIX}") from None
    except OSError:
        raise ConfigError(f"--address {host}:{port}: nothing answers at {host}:{port} within "
                          f"{timeout:g} s; start the head there (`ray start --head --port={port}`) "
                          f"or {FIX}") from None


def find_token() -> str | None:
    """Where Ray 2.60's token loader would find a token, in its order, or None."""
    if os.environ.get("RAY_AUTH_TOKEN", "").strip():
        return "RAY_AUTH_TOKEN"
    path = os.environ.get("RAY_AUTH_TOKEN_PATH")
    candidates = [("RAY_AUTH_TOKEN_PATH", Path(path).expanduser())] if path else []
    candidates.append(("~/.ray/auth_token", Path.home() / ".ray" / "auth_token"))
    for name, p in candidates:
        try:
            if p.read_text().strip():
                return f"{name} ({p})" if name != "~/.ray/auth_token" else str(p)
        except OSError:
            pass
    return None


def auth_environment() -> str | None:
    """Send the token if there is one: set RAY_AUTH_MODE=token unless the user chose a mode.

    Returns where the token is (for messages), or None.
    """
    source = find_token()
    if source and "RAY_AUTH_MODE" not in os.environ:
        os.environ["RAY_AUTH_MODE"] = "token"
        try:  # as ray's own _enable_token_auth: refresh the cached config of this process
            from ray._raylet import AuthenticationTokenLoader, Config

            Config.initialize("")
            AuthenticationTokenLoader.instance().reset_cache()
        except Exception:  # noqa: BLE001 - a Ray without these reads the env var at init
            pass
    return source


def _refused(address: str, source: str | None) -> ConfigError:
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if mode.lower() == "disabled":
        why = "requires a token and RAY_AUTH_MODE=disabled is set: unset it"
    elif source:
        why = f"refused mixerlab's token (from {source}): copy the head's ~/.ray/auth_token here"
    else:
        why = ("requires a token and none was found: copy the head's ~/.ray/auth_token to this "
               "machine")
    return ConfigError(f"--address {address}: the Ray cluster at {address} {why} "
                       "(or set RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH)")


@contextmanager
def _capture_stderr():
    """Ray's C++ core writes warnings to file descriptor 2: keep them, off the terminal."""
    import sys

    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _check_gcs(address: str, source: str | None) -> None:
    """One RPC to the head's GCS: a refused token fails at once, not after 20 s of retries."""
    from ray._raylet import GcsClient
    from ray.exceptions import AuthenticationError

    result: list[BaseException | None] = []

    def ask():
        try:
            GcsClient(address=address).cluster_id  # noqa: B018 - the call is the check
            result.append(None)
        except BaseException as err:  # noqa: BLE001 - handed to the caller
            result.append(err)

    # A daemon thread: something that listens but is not a Ray head keeps Ray waiting 40 s.
    t = threading.Thread(target=ask, daemon=True)
    t.start()
    t.join(GCS_TIMEOUT_S)
    if not result:
        raise ConfigError(f"--address {address}: something listens at {address} but it is not a "
                          f"Ray head (no reply within {GCS_TIMEOUT_S} s); give the head's GCS port "
                          "(6379 by default, not the dashboard's 8265) or " + FIX)
    err = result[0]
    if isinstance(err, AuthenticationError) or "InvalidAuthToken" in str(err or ""):
        raise _refused(address, source)
    if err is not None:
        raise ConfigError(f"--address {address}: no Ray head answers at {address} "
                          f"({type(err).__name__}: {str(err).splitlines()[0][:120]}); {FIX}")


def connect(address: str) -> Connection:
    """Check ``address`` and connect this driver to the cluster there; ConfigError if not."""
    global _live
    host, port = parse_address(address)
    probe(host, port)
    source = auth_environment()
    import ray

    ray_log = logging.getLogger("ray")
    saved = ray_log.handlers[:], ray_log.propagate
    ray_log.handlers[:] = []
    ray_log.propagate = False  # Ray's Python chatter: kept with the C++ one below
    try:
        with _capture_stderr() as said:
            _check_gcs(f"{host}:{port}", source)
            try:
                ray.init(address=f"{host}:{port}", log_to_driver=False, include_dashboard=False,
                         configure_logging=False, logging_level=logging.WARNING)
            except Exception as err:  # noqa: BLE001 - every failure here is the address's
                ray.shutdown()
                if "InvalidAuthToken" in repr(err) or type(err).__name__ == "AuthenticationError":
                    raise _refused(address, source) from None
                raise ConfigError(f"--address {address}: could not connect to the Ray cluster "
                                  f"there ({type(err).__name__}: {err}); {FIX}") from None
    finally:
        ray_log.handlers[:], ray_log.propagate = saved
    _live = Connection(address, source, "".join(said))
    return _live


def disconnect() -> None:
    """Leave the cluster (idempotent)."""
    global _live
    _live = None
    import ray

    ray.shutdown()


@contextmanager
def connected(address: str | None):
    """Connected to the cluster at ``address`` (if any) for the ``with`` block, then left.

    The runner enters it before anything is written: a wrong address or a refused token is
    one line, exit 2, with the study folder untouched.
    """
    if not address:
        yield None
        return
    live = connect(address)
    try:
        yield live
    finally:
        disconnect()
