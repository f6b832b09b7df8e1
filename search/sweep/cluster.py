"""The Ray cluster a sweep runs on: a private local instance, or one joined by --address; what its nodes
offer."""

import os
import signal
import socket

import optuna
import ray
from ray._raylet import AuthenticationTokenLoader, Config, GcsClient
from ray.exceptions import AuthenticationError

from configs.errors import UserError


def connect(address: str | None, num_cpus: int | None = None) -> None:
    if ray.is_initialized():
        return
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if address:
        _check_reachable(address)
        follow_cluster_auth(address)
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        except Exception as err:  # Ray raises ConnectionError, RuntimeError or its own types here
            raise UserError(
                f"cannot join the Ray cluster at {address}: {str(err).splitlines()[0]}; "
                "check the address printed by `ray start --head`"
            ) from None
        return
    # A private local cluster listens on loopback only: nothing else on the network can join it.
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    # Ray's processes are born into the driver's process group, so a Ctrl-C or a SIGTERM sent to the group (by
    # a terminal, a scheduler) would reach them too and kill the trials before the driver could stop them
    # cleanly. They inherit the signal mask they are started with: started with SIGINT and SIGTERM blocked,
    # they leave those signals to the driver (Ray blocks SIGINT itself; it stops its processes with SIGKILL).
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        # address="local": always a new private instance. Without it Ray joins whatever RAY_ADDRESS names or
        # the cluster that `ray start` left in its temp directory, and hangs if that one is gone.
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
        )
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    _kill_at_once(ray._private.worker._global_node)


def _kill_at_once(node) -> None:
    """Ray's shutdown sends its processes SIGTERM and waits a second on each before it kills them; ours ignore
    SIGTERM (blocked above), so it would wait on every one. Have it kill them at once; it still disconnects
    the driver first."""
    kill = node.kill_all_processes
    node.kill_all_processes = lambda *args, **kwargs: kill(*args, **(kwargs | {"allow_graceful": False}))


def follow_cluster_auth(address: str) -> None:
    """Use token authentication exactly when the cluster does. A driver that holds a token (Ray writes
    ~/.ray/auth_token on any local start) turns it on, and a cluster started without it then accepts the
    driver but cancels every trial's actor; a driver without it is refused by a cluster that has it. So ask
    the cluster without a token first: it answers, or refuses at once for the token."""
    if address.startswith("ray://"):  # Ray Client: its server, not the GCS, answers there
        return
    if _answers(address, "disabled"):
        return
    if not AuthenticationTokenLoader.instance().has_token(ignore_auth_mode=True):
        raise UserError(
            f"the Ray cluster at {address} uses token authentication and this machine has no token; copy "
            "the head's ~/.ray/auth_token here, or set RAY_AUTH_TOKEN (or RAY_AUTH_TOKEN_PATH) to it"
        )
    if not _answers(address, "token"):
        raise UserError(
            f"the Ray cluster at {address} refused this machine's authentication token; set RAY_AUTH_TOKEN "
            "(or RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token) to the token the head was started with"
        )


def _answers(address: str, mode: str) -> bool:
    """Does the cluster's GCS answer a driver in this RAY_AUTH_MODE? Sets the mode for this process and the
    processes it starts, as `ray start` does."""
    os.environ["RAY_AUTH_MODE"] = mode
    Config.initialize("")  # Ray caches its config; this makes the process see the new mode
    try:
        GcsClient(address=address).internal_kv_get(b"sweetspot-auth-probe", None, timeout=10)
    except AuthenticationError:
        return False
    except Exception:  # noqa: BLE001 - not about authentication: ray.init says what is wrong
        return True
    return True


def _check_reachable(address: str) -> None:
    host, _, port = address.replace("ray://", "").rpartition(":")
    if not port.isdigit():
        raise UserError(f"--address {address!r} must look like HOST:PORT, e.g. 127.0.0.1:6379")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except OSError as err:
        raise UserError(
            f"no Ray cluster answers at {address} ({err.strerror or err}); start one with "
            "`ray start --head --port PORT` or leave out --address to run locally"
        ) from None


def alive_nodes() -> list[dict]:
    return [n for n in ray.nodes() if n.get("Alive")]


def _most(resource: str, default: int) -> int:
    """The most of a resource one node offers: a trial runs on a single node, so it can ask for no more."""
    return int(max((n["Resources"].get(resource, 0) for n in alive_nodes()), default=default))


def node_cpus() -> int:
    return _most("CPU", 1)


def node_memory() -> int:
    """Bytes of Ray's `memory` resource (what tasks may reserve)."""
    return _most("memory", 0)


def check_resources(cpus: int, budget: int, budget_text: str) -> None:
    """A trial asks for more than any node has: it would wait forever, so say so now."""
    if cpus > node_cpus():
        raise UserError(
            f"--cpus {cpus} is more than any Ray node has ({node_cpus()}); a trial would wait forever, so "
            "ask for fewer"
        )
    if budget > node_memory():
        raise UserError(
            f"the memory budget {budget_text} per trial is more than any Ray node offers "
            f"({node_memory() / 2**30:.1f} GiB); lower --memory-budget or add a node with more memory"
        )
