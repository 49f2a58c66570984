"""Hostile snippets, one per property the sandbox must hold.

Each snippet prints ``LEAK`` (with details) if its attack worked; the test asserts the word
never appears, that the call came back as a result (never an RPC error), and, where given,
that the result carries the expected error kind. ``{canary}``, ``{secret}``, ``{repo}`` and
``{port}`` are filled in by the test.
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
    Attack("plant_files_and_daemon", (
        "import os, time\n"
        "open('/tmp/planted', 'w').write('x')\nopen('planted_cwd', 'w').write('x')\n"
        "os.makedirs('/dev/shm/planted', exist_ok=True)\n"
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            time.sleep(0.01)\n    os._exit(0)\n"
        "print('planted')")),
    Attack("hunt_files_and_daemon", (
        "import os\n"
        "found = [p for p in ['/tmp/planted', '/dev/shm/planted'] if os.path.exists(p)]\n"
        "found += [d for d in os.listdir('/tmp') if d != 'run']\n"
        "others = [p for p in os.listdir('/proc') if p.isdigit()\n"
        "          and int(p) not in (1, os.getpid())]\n"
        "if found or others:\n    print('LEAK left over', found, others)\n"
        "for d in ['/tmp', '/dev/shm']:\n"
        "    for name in os.listdir(d):\n"
        "        if name != 'run':\n            print('LEAK deletable', d, name)")),
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
