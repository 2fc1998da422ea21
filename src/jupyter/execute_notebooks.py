"""Executes notebooks headless with nbclient, one fresh kernel per notebook, cell by cell.

Driven by src/jupyter/runner.ts: argv[1] is a JSON job file
  {"notebooks": [{"input": path, "output": path, "cwd": dir}], "timeout": seconds|null,
   "startupTimeout": seconds, "kernel": "tslab", "echo": bool}
and every event is one JSON line on stdout:
  {"event": "start", "notebook"}, {"event": "cell", "notebook", "index", "seconds"},
  {"event": "done", "notebook", "seconds"},
  {"event": "failed", "notebook", "index", "codeIndex", "executionCount", "error", "source"}.
It stops at the first failing cell (tslab cancels the cells queued after an error anyway, and
reports errors with empty ename/evalue, so the error text is taken from the cell's stderr stream
and error outputs). The executed copy, partial on failure, is written to "output" either way.
Exit status: 0 all ran, 1 a cell failed, 2 the driver could not run (message on stderr).
"""
import json
import os
import re
import signal
import sys
import time

try:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
except ImportError as e:  # pragma: no cover - reported to the user by runner.ts
    sys.stderr.write(f"{sys.executable} lacks Jupyter's nbclient/nbformat ({e})\n")
    sys.exit(2)

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# Stack frames of the kernel's own machinery: noise under a notebook error.
KERNEL_FRAMES = re.compile(r"^\s+at .*(node:vm|node:internal|[/\\]tslab[/\\]dist[/\\]|sigintHandlersWrap).*$\n?", re.M)


# The client of the notebook being run, so that an interrupt can stop its kernel.
current = {"client": None}


def kill_kernel():
    """Kills the running kernel process: nbclient does not shut it down when interrupted."""
    km = getattr(current["client"], "km", None)
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if process is not None and process.poll() is None:
        process.kill()
        process.wait(10)


def emit(**event):
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def error_text(cell, exc):
    """What went wrong, as the user would read it under the cell."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream" and out.get("name") == "stderr":
            parts.append(out.get("text", ""))
        elif out.get("output_type") == "error":
            tb = "\n".join(out.get("traceback") or [])
            head = ": ".join(x for x in (out.get("ename"), out.get("evalue")) if x)
            parts.append(tb or head)
    text = KERNEL_FRAMES.sub("", ANSI.sub("", "".join(parts))).strip()
    if not text:
        ename = getattr(exc, "ename", "") or type(exc).__name__
        evalue = getattr(exc, "evalue", "") or ""
        text = f"{ename}: {evalue}".strip(": ") if (ename or evalue) else str(exc)
        if text.startswith("<Error>"):
            text = "the kernel reported an error with no message (see the executed notebook)"
    return text


def write_atomic(nb, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        nbformat.write(nb, f)
    os.replace(tmp, path)


class EchoingClient(NotebookClient):
    """Relays the cells' output to our stderr as it arrives, for long runs in a terminal: streams as
    they are, and the new text lines of live displays (training progress is one display, updated in
    place: its status line changes every batch and is skipped; log lines - phases, epochs, ETA - are
    printed once each)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.relayed = {}

    def output(self, outs, msg, display_id, cell_index):
        if msg.get("msg_type") == "stream":
            sys.stderr.write(msg["content"].get("text", ""))
            sys.stderr.flush()
        return super().output(outs, msg, display_id, cell_index)

    def process_message(self, msg, cell, cell_index):
        content = msg.get("content", {})
        display_id = content.get("transient", {}).get("display_id")
        if display_id and msg.get("msg_type") in ("display_data", "update_display_data"):
            text = content.get("data", {}).get("text/plain")
            if isinstance(text, list):
                text = "".join(text)
            if isinstance(text, str) and "\n" in text:
                seen = self.relayed.setdefault(display_id, set())
                for line in text.split("\n")[1:]:
                    if line.strip() and line not in seen:
                        seen.add(line)
                        sys.stderr.write(line + "\n")
                sys.stderr.flush()
        return super().process_message(msg, cell, cell_index)


def run_one(spec, job):
    path = spec["input"]
    nb = nbformat.read(path, as_version=4)
    kernel = job.get("kernel") or nb.metadata.get("kernelspec", {}).get("name") or "tslab"
    cls = EchoingClient if job.get("echo") else NotebookClient
    client = cls(
        nb,
        timeout=job.get("timeout"),
        startup_timeout=job.get("startupTimeout", 120),
        kernel_name=kernel,
        resources={"metadata": {"path": spec["cwd"]}},
    )
    current["client"] = client
    emit(event="start", notebook=path)
    began = time.time()
    code_index = 0
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            if cell.cell_type != "code":
                continue
            code_index += 1
            t0 = time.time()
            try:
                client.execute_cell(cell, index)
            except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
                text = error_text(cell, exc)
                if isinstance(exc, CellTimeoutError):
                    text = f"timed out after {job.get('timeout')} s (set --timeout or TLWB_CELL_TIMEOUT)\n{text}"
                elif isinstance(exc, DeadKernelError):
                    text = f"the kernel died ({exc})\n{text}"
                write_atomic(nb, spec["output"])
                emit(
                    event="failed",
                    notebook=path,
                    index=index,
                    codeIndex=code_index,
                    executionCount=cell.get("execution_count"),
                    error=text.strip(),
                    source=cell.source,
                )
                return False
            if cell.get("execution_count") is None:
                # tslab sends no execute_input, so nbclient leaves the count empty; in a fresh
                # kernel running every code cell in order, the kernel's count is this one.
                cell.execution_count = code_index
            emit(event="cell", notebook=path, index=index, seconds=round(time.time() - t0, 3))
    write_atomic(nb, spec["output"])
    emit(event="done", notebook=path, seconds=round(time.time() - began, 3))
    return True


def interrupted(signum, _frame):
    # Unwind through setup_kernel() so the kernel is shut down, not orphaned.
    raise KeyboardInterrupt(f"signal {signum}")


# Ctrl-C: the first one is passed to the kernel as Jupyter's Interrupt is (a training cell stops after
# its batch with a checkpoint and fails with "interrupted at ...: rerun to resume"); a second one quits.
sigints = {"count": 0, "last": 0.0}


def on_sigint(signum, frame):
    now = time.time()
    if now - sigints["last"] < 1.0:
        return  # the terminal's Ctrl-C and the copy runner.ts forwards are one interrupt
    sigints["last"] = now
    sigints["count"] += 1
    km = getattr(current["client"], "km", None)
    process = getattr(getattr(km, "provisioner", None), "process", None)
    if sigints["count"] == 1 and process is not None and process.poll() is None:
        sys.stderr.write("notebook driver: interrupting the kernel (training stops after its batch with a checkpoint); Ctrl-C again to quit now\n")
        sys.stderr.flush()
        process.send_signal(signal.SIGINT)
        return
    interrupted(signum, frame)


def main():
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, on_sigint)
    if len(sys.argv) != 2:
        sys.stderr.write("usage: execute_notebooks.py <job.json>\n")
        return 2
    with open(sys.argv[1], encoding="utf-8") as f:
        job = json.load(f)
    for spec in job["notebooks"]:
        if not run_one(spec, job):
            return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt as e:
        kill_kernel()
        sys.stderr.write(f"notebook driver: interrupted ({e})\n")
        sys.exit(130)
    except Exception as e:  # kernel failed to start, unreadable notebook, ...
        sys.stderr.write(f"notebook driver: {type(e).__name__}: {e}\n")
        sys.exit(2)
