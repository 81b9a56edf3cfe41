"""initwise.cpus: the CPUs a fill may use now — affinity, a container's quota, other processes'
load — and apply's use of them (one thread when the machine's cores are busy, torch's writes
included, the same bits)."""

import pytest

from initwise import cpus


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_quota_reads_cgroup_v2_then_v1(tmp_path):
    none = str(tmp_path / "absent")
    assert cpus.quota(_write(tmp_path, "a", "max 100000\n"), (none, none)) is None
    assert cpus.quota(_write(tmp_path, "b", "200000 100000\n"), (none, none)) == 2
    assert cpus.quota(_write(tmp_path, "c", "150000 100000\n"), (none, none)) == 2  # (rounded up)
    assert cpus.quota(_write(tmp_path, "d", "50000 100000\n"), (none, none)) == 1
    assert cpus.quota(_write(tmp_path, "e", "junk\n"), (none, none)) is None
    v1 = (_write(tmp_path, "q", "300000\n"), _write(tmp_path, "p", "100000\n"))
    assert cpus.quota(none, v1) == 3
    assert cpus.quota(none, (_write(tmp_path, "q1", "-1\n"), v1[1])) is None  # (no quota)
    assert cpus.quota(none, (none, none)) is None


def test_runnable_and_own_running_parse_procfs(tmp_path):
    assert cpus._runnable(_write(tmp_path, "loadavg", "2.03 1.29 1.59 3/98 594\n")) == 3
    assert cpus._runnable(_write(tmp_path, "bad", "2.03\n")) is None
    assert cpus._runnable(str(tmp_path / "absent")) is None
    tasks = tmp_path / "task"
    for tid, state in (("1", "R"), ("2", "S"), ("3", "R")):
        (tasks / tid).mkdir(parents=True)
        # (a thread name may hold spaces and parentheses: the state follows the last ')')
        (tasks / tid / "stat").write_bytes(f"{tid} (a (b) c) {state} 1 2 3\n".encode())
    assert cpus._own_running(str(tasks)) == 2
    assert cpus._own_running(str(tmp_path / "absent")) == 1


@pytest.mark.parametrize(
    "allowed, online, busy, want",
    [(2, 2, 0, 2), (2, 2, 1, 1), (2, 2, 2, 1), (2, 2, 5, 1), (4, 64, 60, 4), (4, 64, 62, 2)],
)
def test_free_is_the_allowed_or_the_idle_cpus(monkeypatch, allowed, online, busy, want):
    monkeypatch.setattr(cpus, "allowed", lambda: allowed)
    monkeypatch.setattr(cpus, "online", lambda: online)
    monkeypatch.setattr(cpus, "busy_elsewhere", lambda: busy)
    assert cpus.free() == want


def test_busy_elsewhere_is_reused_briefly(monkeypatch):
    reads = []
    monkeypatch.setattr(cpus, "_runnable", lambda: reads.append(1) or 3)
    monkeypatch.setattr(cpus, "_own_running", lambda: 1)
    monkeypatch.setattr(cpus, "_last", [float("-inf"), 0.0])
    assert cpus.busy_elsewhere() == 2 and cpus.busy_elsewhere() == 2
    assert len(reads) == 1


def test_apply_on_a_busy_machine_uses_one_thread_and_gives_the_same_bits(monkeypatch):
    torch = pytest.importorskip("torch")
    from torch import nn

    import initwise.torch as it
    from initwise import sampling
    from initwise.torch import apply as A

    m = nn.Sequential(nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10))
    p = it.plan(m)
    seen = []
    real = A._apply

    def spy(plan, model, seed, device, atomic, engine, threads, draw_on, progress):
        seen.append((threads, torch.get_num_threads()))
        return real(plan, model, seed, device, atomic, engine, threads, draw_on, progress)

    monkeypatch.setattr(A, "_apply", spy)
    monkeypatch.delenv("INITWISE_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        monkeypatch.setattr(cpus, "busy_elsewhere", lambda: cpus.online())  # (every core busy)
        p.apply(m, seed=5)
        busy = {k: v.clone() for k, v in m.state_dict().items()}
        assert seen[-1] == (1, 1)  # (the fill and torch's writes on one thread)
        assert torch.get_num_threads() == 2  # (given back)
        monkeypatch.setattr(cpus, "busy_elsewhere", lambda: 0)
        monkeypatch.setattr(cpus, "allowed", lambda: 2)
        assert sampling.default_threads() == 2
        p.apply(m, seed=5, threads=2)
        assert seen[-1] == (2, 2)
        assert all(torch.equal(busy[k], v) for k, v in m.state_dict().items())
        monkeypatch.setenv("INITWISE_THREADS", "2")  # (the user's choice is kept, load or not)
        monkeypatch.setattr(cpus, "busy_elsewhere", lambda: cpus.online())
        assert sampling.default_threads() == 2
    finally:
        torch.set_num_threads(before)
