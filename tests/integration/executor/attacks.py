"""Hostile snippets, one per property the sandbox must hold.

Each snippet prints ``LEAK`` (with details) if its attack worked; the test asserts the word
never appears, that the call came back as a result (never an RPC error), and, where given,
that the result carries the expected error kind. ``{canary}``, ``{secret}``, ``{repo}`` and
``{port}`` are filled in by the test.

An attack marked `every_worker` runs once on each warm worker in a row (the pool hands idle
workers out least recently used first), so that a "plant" is followed by a "hunt" on the
same worker, whichever worker the plant landed on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.tools.executor.service import ErrorKind

TIMEOUTISH = {ErrorKind.TIMEOUT, ErrorKind.CPU_LIMIT}


@dataclass(frozen=True)
class Attack:
    name: str
    code: str
    expect: set[ErrorKind] | None = None  # None: any outcome, as long as nothing leaks
    limits: dict = field(default_factory=dict)
    memory_exceeded: bool = False
    truncated: bool = False
    every_worker: bool = False
    #: Only where the executor limits a call's memory as a whole (a memory cgroup).
    needs_whole_call_memory: bool = False


# Reads PID 1's (the zygote's) nice value, policy, CPU set and file-size limit, and our own
# starting nice value and policy (inherited from PID 1 by the fork, so they must equal its
# own): what a previous call may have tried to change.
WORKER_STATE = (
    "import os, resource\n"
    "def worker_state():\n"
    "    stat = open('/proc/1/stat').read().rsplit(')', 1)[1].split()\n"
    "    limits = [l for l in open('/proc/1/limits') if l.startswith('Max file size')]\n"
    "    cpus = [l for l in open('/proc/1/status') if l.startswith('Cpus_allowed_list')]\n"
    "    return (stat[16], stat[38], limits, cpus, os.getpriority(os.PRIO_PROCESS, 0),\n"
    "            os.sched_getscheduler(0))\n")

IPC_LIB = (
    "import ctypes, ctypes.util, os\n"
    "libc = ctypes.CDLL(None, use_errno=True)\n"
    "try:\n    mq_open = libc.mq_open\n"
    "except AttributeError:\n"
    "    mq_open = ctypes.CDLL(ctypes.util.find_library('rt'), use_errno=True).mq_open\n"
    "libc.shmat.restype = ctypes.c_void_p\n"
    "KEY, IPC_CREAT, QUEUE = 0x5EC2E7, 0o1000, b'/paretopo-planted'\n"
    "def objects():\n"
    "    return [line for kind in ('shm', 'msg', 'sem')\n"
    "            for line in open(f'/proc/sysvipc/{{kind}}').read().splitlines()[1:]]\n")


ATTACKS = [
    Attack("fork_bomb", "import os\nwhile True:\n    os.fork()",
           {ErrorKind.EXCEPTION, *TIMEOUTISH}, {"wall_s": 3}),
    Attack("memory_bomb_alloc", "x = bytearray(64 * 1024 ** 3)", {ErrorKind.MEMORY_LIMIT},
           memory_exceeded=True),
    Attack("memory_bomb_grow", "xs = []\nwhile True:\n    xs.append(' ' * 10 ** 7)",
           {ErrorKind.MEMORY_LIMIT}, {"memory_mb": 512}, memory_exceeded=True),
    Attack("infinite_loop", "while True:\n    pass", TIMEOUTISH, {"wall_s": 1.5, "cpu_s": 1}),
    Attack("threads_spin", (
        "import threading\n"
        "def spin():\n    while True:\n        pass\n"
        "for _ in range(8):\n    threading.Thread(target=spin, daemon=True).start()\n"
        "spin()"), TIMEOUTISH, {"wall_s": 3, "cpu_s": 1}),
    Attack("huge_output", "import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
           {ErrorKind.OUTPUT_LIMIT}, truncated=True),
    Attack("write_outside_tmp", (
        "import os\n"
        "for p in ['/usr/evil', '/etc/evil', '/evil', '{canary}', '{repo}/evil']:\n"
        "    try:\n        open(p, 'w').write('x')\n        print('LEAK wrote', p)\n"
        "    except OSError:\n        pass")),
    Attack("read_proc1_environ", (
        "import os\n"
        "for pid in ['1', 'self', *[p for p in os.listdir('/proc') if p.isdigit()]]:\n"
        "    try:\n        data = open(f'/proc/{{pid}}/environ', 'rb').read()\n"
        "    except OSError:\n        continue\n"
        "    if b'{secret}' in data:\n        print('LEAK environ of', pid)")),
    Attack("service_env_and_home", (
        "import os\n"
        "if '{secret}' in repr(dict(os.environ)):\n    print('LEAK env')\n"
        "for p in ['/root', '/home', '{repo}']:\n"
        "    try:\n        names = os.listdir(p)\n    except OSError:\n        continue\n"
        "    if {{'pyproject.toml', '.bashrc', '.cache', 'main'}} & set(names):\n"
        "        print('LEAK home', p, names)\n"
        "try:\n    open('{repo}/pyproject.toml').read()\n    print('LEAK service file')\n"
        "except OSError:\n    pass")),
    Attack("tcp_socket", (
        "import socket\n"
        "for host in ['127.0.0.1', '1.1.1.1']:\n"
        "    try:\n        socket.create_connection((host, {port}), timeout=1)\n"
        "        print('LEAK tcp', host)\n    except OSError:\n        pass")),
    Attack("udp_socket", (
        "import socket\n"
        "try:\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        "    s.sendto(b'x', ('8.8.8.8', 53))\n    print('LEAK udp')\nexcept OSError:\n    pass")),
    Attack("unix_socket_to_host", (
        "import socket\n"
        "try:\n    s = socket.socket(socket.AF_UNIX)\n    s.connect('\\0{abstract}')\n"
        "    print('LEAK unix')\nexcept OSError:\n    pass")),
    Attack("subprocess_and_system", (
        "import os, subprocess\n"
        "try:\n    out = subprocess.run(['echo', 'LEAK subprocess'], capture_output=True)\n"
        "    print(out.stdout.decode())\nexcept OSError:\n    pass\n"
        "os.system('echo LEAK system')")),
    Attack("ctypes_syscalls", (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "if libc.unshare(0x10000000) == 0:\n    print('LEAK unshare')\n"
        "if libc.ptrace(16, 1, 0, 0) == 0:\n    print('LEAK ptrace')\n"
        "try:\n    open('/proc/1/mem', 'rb').read(1)\n    print('LEAK mem')\n"
        "except OSError:\n    pass\n"
        "ctypes.string_at(0)"), {ErrorKind.KILLED_BY_SIGNAL}),
    Attack("kill_parent_group", (
        "import os, signal\n"
        "for target in [lambda: os.kill(os.getppid(), 9), lambda: os.kill(1, 9),\n"
        "               lambda: os.killpg(os.getpgid(os.getppid()), 9),\n"
        "               lambda: os.kill(-1, 9), lambda: os.killpg(0, 9)]:\n"
        "    try:\n        target()\n    except OSError:\n        pass")),
    Attack("worker_poisoning", WORKER_STATE + (
        "before = worker_state()\n"
        "if (before[4], before[5]) != (int(before[0]), int(before[1])):\n"
        "    print('LEAK this call starts changed', before)\n"
        "tries = [lambda: resource.prlimit(1, resource.RLIMIT_FSIZE, (1 << 20, 1 << 20)),\n"
        "         lambda: resource.prlimit(1, resource.RLIMIT_NPROC, (1, 1)),\n"
        "         lambda: os.setpriority(os.PRIO_PROCESS, 1, 19),\n"
        "         lambda: os.setpriority(os.PRIO_PGRP, 0, 19),\n"
        "         lambda: os.setpriority(os.PRIO_USER, 0, 19),\n"
        "         lambda: os.setpriority(os.PRIO_USER, os.getuid(), 19),\n"
        "         lambda: os.sched_setscheduler(1, os.SCHED_IDLE, os.sched_param(0)),\n"
        "         lambda: os.sched_setaffinity(1, {{min(os.sched_getaffinity(0))}})]\n"
        "for attempt in tries:\n"
        "    try:\n        attempt()\n    except OSError:\n        pass\n"
        "after = worker_state()\n"
        "if after[:4] != before[:4]:\n    print('LEAK worker changed', before, after)\n"
        "os.nice(5)\n"  # our own nice value is ours to change: it must not outlive the call
        "os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))"),
        every_worker=True),
    Attack("worker_unchanged", WORKER_STATE + (
        "state = worker_state()\n"
        "if (state[4], state[5]) != (int(state[0]), int(state[1])):\n"
        "    print('LEAK this call starts changed', state)\n"
        "if resource.getrlimit(resource.RLIMIT_FSIZE)[0] < 16 << 20:\n"
        "    print('LEAK file size limit lowered')\n"
        "print('ok')"), {ErrorKind.NONE}, every_worker=True),
    Attack("plant_ipc", IPC_LIB + (
        "shm = libc.shmget(KEY, 64 << 20, IPC_CREAT | 0o600)\n"
        "if shm >= 0:\n"
        "    addr = libc.shmat(shm, None, 0)\n"
        "    ctypes.memset(addr, 1, 64 << 20)\n"  # 64 MiB held outside every process
        "    ctypes.memmove(addr, b'planted-shm', 11)\n"
        "    libc.shmdt(ctypes.c_void_p(addr))\n"
        "msg = libc.msgget(KEY, IPC_CREAT | 0o600)\n"
        "if msg >= 0:\n"
        "    buf = ctypes.create_string_buffer(b'\\x01\\0\\0\\0\\0\\0\\0\\0planted-msg')\n"
        "    libc.msgsnd(msg, buf, 11, 0)\n"
        "libc.semget(KEY, 1, IPC_CREAT | 0o600)\n"
        "mq_open(QUEUE, os.O_CREAT | os.O_RDWR, 0o600, None)\n"
        "print('planted', len(objects()))"), every_worker=True),
    Attack("hunt_ipc", IPC_LIB + (
        "if objects():\n    print('LEAK System V IPC left by an earlier call', objects())\n"
        "for get in (libc.shmget, libc.msgget):\n"
        "    if get(KEY, 0, 0) >= 0:\n        print('LEAK found', get.__name__)\n"
        "if libc.semget(KEY, 0, 0) >= 0:\n    print('LEAK found semaphore')\n"
        "if mq_open(QUEUE, os.O_RDONLY) >= 0:\n    print('LEAK message queue survived')\n"
        "print('hunted')"), {ErrorKind.NONE}, every_worker=True),
    Attack("memory_split_over_processes", (
        # 4 processes of 300 MiB each, every one under the 512 MiB limit on its own.
        # Counted: the children that have their 300 MiB and are still alive (so holding
        # it) once every child has either said so or died.
        "import os, time\n"
        "size, children = 300 << 20, {{}}\n"
        "for _ in range(4):\n"
        "    r, w = os.pipe()\n"
        "    pid = os.fork()\n"
        "    if pid == 0:\n"
        "        os.close(r)\n"
        "        block = bytearray(size)\n"
        "        block[::4096] = b'\\1' * len(range(0, size, 4096))\n"
        "        os.write(w, b'ok')\n"
        "        time.sleep(4)\n"
        "        os._exit(0)\n"
        "    os.close(w)\n"
        "    children[pid] = r\n"
        "said = [pid for pid, r in children.items() if os.read(r, 2) == b'ok']\n"
        "held = [pid for pid in said if os.waitpid(pid, os.WNOHANG) == (0, 0)]\n"
        "if len(held) * 300 > 512:\n"
        "    print('LEAK', len(held) * 300, 'MiB held at once under a 512 MiB limit')"),
        {ErrorKind.MEMORY_LIMIT}, {"memory_mb": 512, "wall_s": 10}, memory_exceeded=True,
        needs_whole_call_memory=True),
    Attack("deep_directory_tree", (
        "import os\n"
        "for _ in range(4000):\n    os.mkdir('d')\n    os.chdir('d')\n"
        "open('leaf', 'w').write('x')\n"
        "os.chmod('.', 0)\n"
        "print('deep')"), {ErrorKind.NONE}),
    Attack("stderr_flood", "import sys\nwhile True:\n    sys.stderr.write('x' * 65536)",
           {ErrorKind.OUTPUT_LIMIT}),
    Attack("plant_files_and_daemon", (
        "import os, time\n"
        "open('/tmp/planted', 'w').write('x')\nopen('planted_cwd', 'w').write('x')\n"
        "os.makedirs('/dev/shm/planted', exist_ok=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            time.sleep(0.01)\n    os._exit(0)\n"
        "print('planted')"), every_worker=True),
    Attack("hunt_files_and_daemon", (
        "import os\n"
        "found = [p for p in ['/tmp/planted', '/dev/shm/planted'] if os.path.exists(p)]\n"
        "found += [d for d in os.listdir('/tmp') if d != 'run']\n"
        "others = [p for p in os.listdir('/proc') if p.isdigit()\n"
        "          and int(p) not in (1, os.getpid())]\n"
        "if found or others:\n    print('LEAK left over', found, others)\n"
        "for d in ['/tmp', '/dev/shm']:\n"
        "    for name in os.listdir(d):\n"
        "        if name != 'run':\n            print('LEAK deletable', d, name)"),
        every_worker=True),
    Attack("sleep_past_limit", "import time\ntime.sleep(100)", {ErrorKind.TIMEOUT},
           {"wall_s": 1}),
    Attack("signal_handler_tricks", (
        "import signal\n"
        "for s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT, signal.SIGALRM):\n"
        "    signal.signal(s, signal.SIG_IGN)\n"
        "signal.alarm(1)\nwhile True:\n    pass"), TIMEOUTISH, {"wall_s": 3, "cpu_s": 1}),
    Attack("recursion_limit_abuse", (
        "import sys\nsys.setrecursionlimit(10 ** 7)\n"
        "def f(n):\n    return f(n + 1) + 1\nf(0)"),
        # 3.11 keeps Python-to-Python calls off the C stack: the frames fill the heap.
        {ErrorKind.KILLED_BY_SIGNAL, ErrorKind.EXCEPTION, ErrorKind.MEMORY_LIMIT, *TIMEOUTISH},
        {"memory_mb": 256, "wall_s": 3}),
    Attack("huge_file", "open('big', 'wb').write(b'x' * (64 * 1024 * 1024))",
           {ErrorKind.FILE_SIZE_LIMIT, ErrorKind.EXCEPTION}),
]
