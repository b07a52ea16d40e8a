"""xent.verify: the property suite and the accuracy sweep on a Python cross-entropy.

    verdict = xent.verify(my_ce, tier="fast")
    assert verdict.accepted, verdict

The function has torch.nn.functional.cross_entropy's signature
``fn(input, target, weight=None, ignore_index=-100, reduction='mean',
label_smoothing=0.0)`` and returns a torch tensor; the gradient is taken by
autograd (``torch.autograd.grad`` with the suite's upstream gradient), so a
function whose result does not require grad fails the gradient properties.

How it runs: ``xent verify --plugin libxent_python_plugin.so`` in a
subprocess. That plug-in embeds Python and imports the function by name
(``module:qualified_name``) in the child process of each property, so
neither a crash (a segfault, ``os._exit``) nor a hang (``timeout`` seconds
per property) in the function can take the caller down: `xent verify`
reports it as a failure, and after a crash reruns the property with every
call in its own process to shrink the input that crashes. The function must
therefore be importable: defined at the top level of a module on
``sys.path`` (not in ``__main__``, not a lambda or a closure), or given as
the string ``'module:function'``.
"""

import os
import re
import select
import signal
import subprocess
import sys
from dataclasses import dataclass, field

_HERE = os.path.dirname(os.path.abspath(__file__))
_TIERS = ("accurate", "fast", "relaxed", "standard", "naive")


@dataclass
class Failure:
    property: str  # suite/name
    status: str    # the status line: "FAIL  after 12 passing cases", "CRASH crashed: SIGSEGV", ...
    details: str = ""  # the counterexample (shrunk input), messages, worst errors
    replay: str = ""   # the command that replays it
    reason: str = ""   # for a known deviation: the documented reason

    def __str__(self):
        return f"{self.property}: {self.status}" + (f"\n{self.details}" if self.details else "")


@dataclass
class Verdict:
    accepted: bool
    summary: str  # xent verify's verdict line
    failures: list = field(default_factory=list)  # Failure: new findings
    known: list = field(default_factory=list)  # Failure: documented deviations of the peer it was judged as
    output: str = ""  # everything xent verify printed
    returncode: int = 0

    def __bool__(self):
        return self.accepted

    def __str__(self):
        known = [f"{f.property}: known deviation: {f.reason or f.status}" for f in self.known]
        return "\n".join([self.summary] + [str(f) for f in self.failures] + known)


def _spec(fn):
    if isinstance(fn, str):
        if ":" not in fn:
            raise ValueError(f"a function name must be 'module:function', got {fn!r}")
        return fn
    module, name = getattr(fn, "__module__", None), getattr(fn, "__qualname__", None)
    if not module or not name or "<" in name:
        raise ValueError(
            f"xent.verify runs the function in another process and imports it by name: {fn!r} is not "
            "importable (define it at the top level of a module, or pass 'module:function')"
        )
    if module == "__main__":
        main = sys.modules["__main__"]
        path = getattr(main, "__file__", None)
        raise ValueError(
            f"xent.verify imports the function by name in another process; {name} is defined in __main__"
            + (f" ({path})" if path else "")
            + ": move it to a module, or pass 'module:function'"
        )
    return f"{module}:{name}"


def _command():
    """The xent command: $XENT_COMMAND, else the build tree's (build/<preset>/cli/xent)."""
    c = os.environ.get("XENT_COMMAND") or os.path.join(_HERE, "..", "..", "cli", "xent")
    if not os.access(c, os.X_OK):
        raise FileNotFoundError(f"the xent command is not at {c} (build the target xent, or set XENT_COMMAND)")
    return os.path.normpath(c)


def _parse(output):
    failures, known = [], []
    summary = ""
    current = None
    in_reasons = False
    line_re = re.compile(r"^  (\S+/\S+)\s+(FAIL|CRASH|ERROR)\b(.*)$")
    known_re = re.compile(r"^  (\S+/\S+)\s+known \S+ deviation \(((?:FAIL|CRASH|ERROR)\b.*); see below\)$")
    reason_re = re.compile(r"^  (\S+/\S+): (.*)$")
    for line in output.splitlines():
        m = line_re.match(line)
        if m:
            current = Failure(m.group(1), (m.group(2) + m.group(3)).strip())
            failures.append(current)
            continue
        m = known_re.match(line)
        if m:
            current = Failure(m.group(1), m.group(2).strip())
            known.append(current)
            continue
        if line.startswith("Known ") and line.rstrip().endswith("not new findings):"):
            in_reasons, current = True, None
            continue
        m = reason_re.match(line) if in_reasons else None
        if m:
            for f in known:
                if f.property == m.group(1):
                    f.reason = m.group(2)
            continue
        in_reasons = False
        if line.startswith("      ") and current is not None:
            text = line[6:]
            current.details += text + "\n"
            if text.startswith("Replay: "):
                current.replay = text[len("Replay: "):]
            continue
        current = None
        if line.startswith("Verdict for "):
            summary = line
    return summary, failures, known


def verify(fn, tier="standard", properties=None, seed=None, scale=1.0, timeout=None, sweep=True,
           name=None, quiet=False, known_deviations=None):
    """Runs `xent verify` on a Python cross-entropy; prints its report (unless quiet) and returns a Verdict.

    tier: the tier to judge by (accurate, fast, standard, naive). properties:
    names (or suite/name) to run, None for all. seed: the RapidCheck seed
    (None: xent verify's pinned one). scale: multiplies every property's case
    budget. timeout: seconds per property before a hang is a failure.
    sweep: also the accuracy sweep. name: the name reported (default: the
    function's). known_deviations: whose documented deviations count apart
    from new failures (in ``Verdict.known``, each with its counterexample):
    "torch" (e.g. for a wrapper of F.cross_entropy) or "none"; by default
    "torch" for torch.nn.functional.cross_entropy itself, none otherwise. They
    apply at the tier they were measured at (standard). The verdict is truthy
    when accepted; a function that deviates only in documented ways is still
    not accepted, but has no ``failures``.
    """
    if tier not in _TIERS:
        raise ValueError(f"tier must be one of {', '.join(_TIERS)}, got {tier!r}")
    spec = _spec(fn)
    plugin = os.path.join(_HERE, "libxent_python_plugin.so")
    if not os.path.exists(plugin):
        raise FileNotFoundError(f"{plugin} is missing (build the target xent_python_plugin)")
    if name is None:
        name = re.sub(r"[^a-z0-9_]", "_", spec.split(":")[1].lower())
    args = [_command(), "verify", "--plugin", plugin, "--tier", tier, "--scale", repr(float(scale))]
    if seed is not None:
        args += ["--seed", str(int(seed))]
    if timeout is not None:
        args += ["--timeout", repr(float(timeout))]
    if not sweep:
        args.append("--no-sweep")
    for p in properties or []:
        args += ["--property", p]
    if known_deviations is None and spec == "torch.nn.functional:cross_entropy":
        known_deviations = "torch"
    if known_deviations is not None:
        if known_deviations not in ("torch", "none"):
            raise ValueError(f"known_deviations must be 'torch' or 'none', got {known_deviations!r}")
        args += ["--known-deviations", known_deviations]
    env = dict(os.environ)
    env.update(
        XENT_PYTHON_FUNCTION=spec,
        XENT_PYTHON_NAME=name,
        XENT_PYTHON_TIER=tier,
        # The child interpreter sees this one's path (the module, xent itself).
        PYTHONPATH=os.pathsep.join(p if p else os.getcwd() for p in sys.path),
        OMP_NUM_THREADS="1",
    )
    lines = []

    def emit(text):
        lines.append(text)
        if not quiet:
            sys.stdout.write(text)
            sys.stdout.flush()

    # Its own session: a process that `xent verify` leaves behind (a call
    # isolated in a grandchild that hangs, outliving the property's child
    # killed at the timeout) would hold the output pipe open; when the
    # command itself has ended, its process group is killed.
    with subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                          start_new_session=True) as proc:
        fd = proc.stdout.fileno()
        pending = b""
        while True:
            ready, _, _ = select.select([fd], [], [], 0.5)
            chunk = os.read(fd, 65536) if ready else b""
            if ready and not chunk:
                break  # every writer has closed the pipe
            pending += chunk
            *complete, pending = pending.split(b"\n")
            for line in complete:
                emit(line.decode(errors="replace") + "\n")
            if not ready and proc.poll() is not None:
                break  # the command has ended; only leftovers hold the pipe
        if pending:
            emit(pending.decode(errors="replace"))
        rc = proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    output = "".join(lines)
    summary, failures, known = _parse(output)
    if not summary:
        summary = f"xent verify ended with status {rc} without a verdict"
    return Verdict(accepted=rc == 0 and "ACCEPTED" in summary, summary=summary, failures=failures, known=known,
                   output=output, returncode=rc)
