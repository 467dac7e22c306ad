"""Run a skill's code template cases under RestrictedPython. Runs INSIDE the sandbox only.

skills_hub.checks.sandbox copies this file and the RestrictedPython package into a
read-only directory that is bound into the sandbox, and starts it with the system
interpreter (`python3 -E -s -S -B _sandbox_runner.py SPEC`); it is never imported by the
server. Only the standard library and RestrictedPython may be used here.

SPEC is a JSON file: {"source", "filename", "entrypoint", "output_bytes", "modules",
"cases": [{"name", "args", "timeout"}]}; "modules" are the ones a template may import.
The template is compiled once; each case runs in a forked child (own state, own CPU limit,
killed at its timeout) that calls the entrypoint with **args. One JSON line per case goes
to stdout, which template code cannot reach:
{"case": i, "status": "ok" | "error" | "timeout" | "signal", "value", "error", "stdout",
"duration_ms", "signal"}. A first line {"compile_error": ...} or {"fatal": ...} replaces
the case lines when the template cannot run at all.

RestrictedPython is not a sandbox: this is the second layer, inside the real one.
"""

from __future__ import annotations

import json
import operator
import os
import select
import signal
import sys
import time
import types

# Public attributes withheld: they look attributes up by name, or eval strings, unguarded
# (string.Formatter().get_field, functools.update_wrapper(updated=("__globals__",)),
# singledispatch's annotation eval). functools is an allowlist for that reason.
_WITHHELD = {"string": {"Formatter"}}
_ONLY = {"functools": {"reduce", "partial", "lru_cache", "cache", "cmp_to_key",
                       "total_ordering", "cached_property"}}
_VALUE_LIMIT = 64 * 1024
_INPLACE = {"+=": operator.iadd, "-=": operator.isub, "*=": operator.imul,
            "/=": operator.itruediv, "//=": operator.ifloordiv, "%=": operator.imod,
            "**=": operator.ipow, "<<=": operator.ilshift, ">>=": operator.irshift,
            "&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
            "@=": operator.imatmul}


def main(argv: list[str]) -> int:
    with open(argv[1], encoding="utf-8") as handle:
        spec = json.load(handle)
    try:
        import RestrictedPython  # noqa: F401
    except Exception as exc:  # ImportError, or a SyntaxError on too old a python
        _emit({"fatal": f"RestrictedPython cannot be imported by {sys.executable}: {exc}"})
        return 3
    code = _compile(spec)
    if code is None:
        return 0
    for index, case in enumerate(spec["cases"]):
        result = _run_case(code, spec, case)
        result["case"] = index
        _emit(result)
    return 0


def _emit(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _compile(spec: dict) -> types.CodeType | None:
    """The restricted code object, or None after reporting why it does not compile."""
    from RestrictedPython import compile_restricted

    try:
        return compile_restricted(spec["source"], filename=spec["filename"], mode="exec")
    except SyntaxError as exc:
        message = exc.msg if isinstance(exc.msg, str) else "; ".join(map(str, exc.msg))
        _emit({"compile_error": message})
    except Exception as exc:  # whatever the compiler raises is the report
        _emit({"compile_error": f"{type(exc).__name__}: {exc}"})
    return None


# --- one case in a forked child -----------------------------------------------------------


def _run_case(code: types.CodeType, spec: dict, case: dict) -> dict:
    """Fork, run the case in the child, wait at most its timeout."""
    started = time.monotonic()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_end)
        _child(write_end, code, spec, case)
    os.close(write_end)
    data, timed_out = _read_until(read_end, started + float(case["timeout"]))
    os.close(read_end)
    if timed_out:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    duration = (time.monotonic() - started) * 1000
    if timed_out:
        return {"status": "timeout", "duration_ms": duration,
                "error": f"still running after {case['timeout']} s"}
    if os.WIFSIGNALED(status) and not data:
        number = os.WTERMSIG(status)
        return {"status": "signal", "signal": number, "duration_ms": duration,
                "error": f"killed by {signal.Signals(number).name}"}
    try:
        result = json.loads(data.decode("utf-8"))
    except ValueError:
        result = {"status": "error", "error": "the case ended without a result"}
    result["duration_ms"] = duration
    return result


def _read_until(fd: int, deadline: float) -> tuple[bytes, bool]:
    """Everything written to fd until EOF; (data, True) if the deadline came first."""
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return b"".join(chunks), True
        ready, _, _ = select.select([fd], [], [], remaining)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                return b"".join(chunks), False
            chunks.append(chunk)


def _child(fd: int, code: types.CodeType, spec: dict, case: dict) -> None:
    """Run the case and write its JSON result to fd; exit without cleanup."""
    output: list[str] = []
    try:
        result = _call(code, spec, case, output)
    except MemoryError:
        result = {"status": "error", "error": "MemoryError"}
    except BaseException as exc:  # the template's exception is the result
        result = {"status": "error", "error": _describe(exc)}
    limit = int(spec["output_bytes"])
    result["stdout"] = "".join(output)[-limit:]
    data = json.dumps(result).encode("utf-8")
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
    os._exit(0)


def _describe(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # a template's __str__ may raise
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _call(code: types.CodeType, spec: dict, case: dict, output: list[str]) -> dict:
    namespace = _globals(output, spec["modules"])
    exec(code, namespace)  # restricted code, inside the sandbox
    entry = namespace.get(spec["entrypoint"])
    if not callable(entry):
        return {"status": "error",
                "error": f"the template defines no function '{spec['entrypoint']}'"}
    value = entry(**case["args"])
    try:
        text = json.dumps(value)
    except (TypeError, ValueError) as exc:
        return {"status": "error",
                "error": f"the returned {type(value).__name__} is not JSON ({exc})"}
    if len(text) > _VALUE_LIMIT:
        return {"status": "error",
                "error": f"the returned value is {len(text)} bytes of JSON; the limit is "
                         f"{_VALUE_LIMIT}"}
    return {"status": "ok", "value": json.loads(text)}


# --- the restricted namespace --------------------------------------------------------------


def _globals(output: list[str], modules: list[str]) -> dict:
    """Builtins and guards for one run of the template."""
    from RestrictedPython import PrintCollector, safe_builtins
    from RestrictedPython.Guards import (
        full_write_guard,
        guarded_iter_unpack_sequence,
        guarded_unpack_sequence,
        safer_getattr,
        safer_getattr_raise,
    )

    class Printer(PrintCollector):
        """print() inside the template: kept and reported with the case."""

        def write(self, text: str) -> None:
            super().write(text)
            output.append(text)

    class TemplateType(type):
        """Metaclass of classes the template defines: their instances accept attributes."""

    def write_guard(obj: object) -> object:
        return obj if isinstance(type(obj), TemplateType) else full_write_guard(obj)

    def getattr_(obj: object, name: str, *default: object) -> object:
        return safer_getattr(obj, name, *default) if default else safer_getattr_raise(obj, name)

    def hasattr_(obj: object, name: str) -> bool:
        try:
            safer_getattr_raise(obj, name)
        except (AttributeError, NotImplementedError):
            return False
        return True

    builtins = dict(safe_builtins)
    builtins.update(_iteration_builtins())
    # No plain `print`: the transformer turns print() calls into the collector, and a bare
    # reference to the real one could write into the result channel.
    builtins.update({"getattr": getattr_, "hasattr": hasattr_,
                     "__import__": _importer(tuple(modules))})
    return {
        "__builtins__": builtins, "__name__": "skill_template", "__metaclass__": TemplateType,
        "_getattr_": safer_getattr_raise, "_getitem_": operator.getitem, "_getiter_": iter,
        "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence, "_write_": write_guard,
        "_inplacevar_": _inplacevar, "_apply_": _apply, "_print_": Printer,
    }


def _iteration_builtins() -> dict:
    """Builtins RestrictedPython leaves out or limits; plain objects need no proxies here."""
    return {"enumerate": enumerate, "sum": sum, "sorted": sorted, "zip": zip, "min": min,
            "max": max, "any": any, "all": all, "map": map, "filter": filter, "list": list,
            "dict": dict, "set": set, "frozenset": frozenset, "tuple": tuple, "range": range,
            "len": len, "abs": abs, "round": round, "isinstance": isinstance,
            "reversed": reversed, "iter": iter, "next": next, "bytes": bytes,
            "bytearray": bytearray, "format": _format}


def _format(value: object, spec: str = "") -> str:
    """format() for plain values; '{...}' field lookups are what str.format makes unsafe."""
    return format(value, spec)


def _inplacevar(op: str, target: object, value: object) -> object:
    return _INPLACE[op](target, value)


def _apply(func, *args, **kwargs):
    return func(*args, **kwargs)


def _importer(allowed: tuple[str, ...]):
    """`import x` for the allowed modules, each as a namespace of its public attributes.

    Submodules are left out, so `json.codecs` or `statistics.sys` lead nowhere.
    """
    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        if level != 0 or name not in allowed:
            raise ImportError(f"templates cannot import '{name}'; allowed modules: "
                              + ", ".join(allowed))
        module = __import__(name)
        withheld = _WITHHELD.get(name, set())
        only = _ONLY.get(name)
        public = {key: value for key, value in vars(module).items()
                  if not key.startswith("_") and key not in withheld
                  and (only is None or key in only)
                  and not isinstance(value, types.ModuleType)}
        return types.SimpleNamespace(**public)

    return _import


if __name__ == "__main__":
    sys.exit(main(sys.argv))
