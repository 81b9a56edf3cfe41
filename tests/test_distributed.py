"""Sharded init on torch.distributed (gloo, localhost only): each rank draws its own shard and
the gathered tensors equal the single-process init, bit for bit."""

import json
import socket

import pytest

torch = pytest.importorskip("torch")
import torch.distributed as dist  # noqa: E402

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed missing")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("world", [1, 2, 4])
def test_sharded_init_is_bit_identical(world, tmp_path):
    import torch.multiprocessing as mp

    from initwise import kernels
    from tests.dist_worker import worker

    # compile (or load) the stream kernel here, so the spawned ranks load it from the on-disk
    # cache instead of all compiling it at once on two cores
    kernels.warm()
    out = tmp_path / "result.json"
    mp.start_processes(
        worker, args=(world, free_port(), str(out)), nprocs=world, start_method="spawn"
    )
    assert json.loads(out.read_text()) == {
        "Shard(0)": True,
        "Shard(1)": True,
        "fsdp2-meta": True,
        "mup-param-groups": True,
        "u-mup-fsdp2": True,
    }
