"""`evoswarm serve`: a small OpenAI-compatible server over the `hf` backend.

Endpoints (the subset vLLM's server also speaks, with its answers): GET /v1/models (the base under its
name with no `parent`, each adapter with `parent` = the base); POST /v1/completions (a prompt, token ids,
or a list of either; `echo` + `logprobs` + `max_tokens: 0` returns prompt log-probabilities);
POST /v1/chat/completions; POST /v1/load_lora_adapter and /v1/unload_lora_adapter (plain-text success;
a name already loaded is a 400, an unknown one a 404). Load is shed, never dropped: a listen backlog of
`backlog` connections, at most `max_queue` requests admitted (more get a 429 with Retry-After), at most
`max_prompts` prompts a request (more are a 400); a prompt cut to fit the context is cut as every backend
cuts it (backends.fit_prompt) and the answer says so (`warnings`). Binds to 127.0.0.1 by default; adapters load only
from the allowed folders, checked as the pipeline checks them (safetensors, finite weights, trained on the
served base, weights and config that still hash to lineage.json's sha256 and config_sha256) before the model
is touched, so a failed load leaves what is served as it was.
"""

from __future__ import annotations

import ipaddress
import json
import math
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from evoswarm.backends import GenRequest
from evoswarm.backends.hf import BASE
from evoswarm.io import InputError
from evoswarm.model.adapters import verify_adapter
from evoswarm.model.base import read_manifest
from evoswarm.protocol.chat import render


class NotServed(Exception):
    """A model or adapter name the server does not serve (HTTP 404)."""


MAX_BODY = 64 << 20  # bytes of one request body
RETRY_AFTER_S = 1  # what a 429 asks the client to wait


# Adapter names a client could mean the base by: "base" (vLLM's examples and this server's default name for
# it) and the hf backend's own name for rows without an adapter; the served base's own name is reserved too.
RESERVED_NAMES = ("base", BASE)


def adapter_name_problem(name, base_name: str) -> str | None:
    """Why `name` cannot name a served adapter, or None: it must be a non-empty string other than the base's names
    (a request for `model: "base"` would otherwise go to that adapter)."""
    if not isinstance(name, str) or not name.strip():
        return "an adapter needs a non-empty name"
    if name in (*RESERVED_NAMES, base_name):
        return f"the adapter name {name!r} is reserved for the base model"
    return None


class ServeState:
    def __init__(
        self, backend, base_dir: str, allowed_dirs: list[str], base_name: str, max_queue: int, max_prompts: int = 256
    ):
        self.backend = backend
        self.max_prompts = max_prompts
        self.manifest = read_manifest(base_dir)
        self.allowed = [Path(d).resolve() for d in allowed_dirs]
        self.base_name = base_name
        self.lock = threading.Lock()  # one model, one request at a time
        # Requests admitted (waiting for the model or running); more are refused with a 429 at once
        # rather than each holding a thread and waiting ever longer.
        self.max_queue = max_queue
        self.queued = 0
        self._queue_lock = threading.Lock()

    def admit(self) -> bool:
        with self._queue_lock:
            if self.queued >= self.max_queue:
                return False
            self.queued += 1
            return True

    def leave(self) -> None:
        with self._queue_lock:
            self.queued -= 1

    def adapter(self, model: str) -> str | None:
        if not isinstance(model, str):  # a list or mapping would be a TypeError (unhashable) naming nothing
            raise ValueError(f"'model' must be a model's name, got {model!r}")
        if model == self.base_name:
            return None
        if model not in self.backend.adapters:
            raise NotServed(f"model {model!r} is not served; load it with /v1/load_lora_adapter")
        return model

    def models(self) -> list[dict]:
        base = {"id": self.base_name, "object": "model", "root": self.base_name, "parent": None}
        loras = [
            {"id": n, "object": "model", "root": p, "parent": self.base_name} for n, p in self.backend.adapters.items()
        ]
        return [{**base, "max_model_len": self.backend.max_length}, *loras]

    def load(self, name: str, path: str) -> None:
        problem = adapter_name_problem(name, self.base_name)
        if problem:
            raise ValueError(f"'lora_name' {name!r}: {problem}")
        if name in self.backend.adapters:
            raise ValueError(f"the lora adapter {name!r} has already been loaded")
        if not isinstance(path, str) or not path or "\0" in path:  # Path() of these is a TypeError naming nothing
            raise ValueError(f"'lora_path' must be an adapter folder's path, got {path!r}")
        p = Path(path).resolve()
        if not any(p == d or d in p.parents for d in self.allowed):
            raise PermissionError(f"adapter path {path} is outside the allowed folders")
        try:
            verify_adapter(p, self.manifest)  # as load_agents checks the --adapters folders
        except InputError:
            raise
        except Exception as e:  # anything unreadable in the client's folder is the client's error
            raise InputError(f"{p}: unreadable adapter ({type(e).__name__}: {e})") from None
        self.backend.add_adapter(name, str(p))

    def unload(self, name: str) -> None:
        if not isinstance(name, str):
            raise ValueError(f"'lora_name' must be an adapter's name, got {name!r}")
        if name not in self.backend.adapters:
            raise NotServed(f"the lora adapter {name!r} cannot be found")
        self.backend.remove_adapter(name)


MAX_LOGPROBS = 20  # vLLM's default max_logprobs
MAX_SEED = 2**63 - 1


def _number(body: dict, field: str, default, low, high, integer: bool = False, low_open: bool = False):
    """body[field] (or `default`) when it is a finite number in range; otherwise a 400 naming the field
    (a huge max_tokens would otherwise fail deep inside torch as a 500)."""
    value = body.get(field, default)
    ok = isinstance(value, int if integer else (int, float)) and not isinstance(value, bool)
    # not math.isfinite: an int past float's range makes it raise OverflowError (a 500); a comparison is exact
    ok = ok and abs(value) < math.inf and (low < value if low_open else low <= value) and value <= high
    if not ok:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"'{field}' must be {kind} in {'(' if low_open else '['}{low}, {high}], got {value!r}")
    return value


def _sampling(state: ServeState, body: dict, max_tokens_default: int, min_tokens: int) -> tuple:
    """(max_tokens, temperature, top_p, seed) of a request, each checked."""
    return (
        # room for at least one prompt token in the context
        _number(body, "max_tokens", max_tokens_default, min_tokens, state.backend.max_length - 1, integer=True),
        float(_number(body, "temperature", 1.0, 0, 100)),
        float(_number(body, "top_p", 1.0, 0, 1, low_open=True)),
        _number(body, "seed", 0, 0, MAX_SEED, integer=True),
    )


def _prompts(state: ServeState, body: dict) -> list[str | list[int]]:
    """The prompts of a /v1/completions body: non-empty texts or lists of token ids in the vocabulary."""
    prompt = body.get("prompt")
    single = isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], int))
    prompts = [prompt] if single else prompt
    vocab = state.backend.model.get_input_embeddings().num_embeddings
    for p in prompts if isinstance(prompts, list) and prompts else [None]:
        is_ids = isinstance(p, list) and all(isinstance(t, int) and not isinstance(t, bool) for t in p)
        if not (p and (isinstance(p, str) or is_ids)):
            raise ValueError("'prompt' must be a non-empty text, a list of token ids, or a list of either")
        if is_ids and not all(0 <= t < vocab for t in p):
            raise ValueError(f"'prompt' holds a token id outside the vocabulary [0, {vocab})")
    if len(prompts) > state.max_prompts:
        # One request holds the model for all its prompts: a cap keeps the queue behind it moving.
        raise ValueError(f"'prompt' holds {len(prompts)} prompts; this server takes at most {state.max_prompts}")
    return prompts


def cut_warnings(state: ServeState, prompts: list[str | list[int]], reply_tokens: int) -> list[str]:
    """What the backend will cut to fit each prompt and its reply in the context, for the client to see
    (the backend cuts it the same way, backends.fit_prompt)."""
    limit = state.backend.max_length - reply_tokens
    out = []
    for i, p in enumerate(prompts):
        n = len(state.backend.tok(p, add_special_tokens=False)["input_ids"]) if isinstance(p, str) else len(p)
        if n > limit:
            out.append(
                f"prompt {i}: {n} tokens cut to {limit} to fit the model's {state.backend.max_length}-token "
                f"context with {reply_tokens} for the reply"
            )
    return out


def _completions(state: ServeState, body: dict) -> dict:
    prompts = _prompts(state, body)
    adapter = state.adapter(body.get("model", state.base_name))
    setting = _sampling(state, body, 16, 0)
    max_tokens = setting[0]
    if body.get("logprobs") is not None:
        _number(body, "logprobs", None, 0, MAX_LOGPROBS, integer=True)
    stops = body.get("stop") or []
    stops = [stops] if isinstance(stops, str) else stops
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise ValueError(f"'stop' must be a text or a list of texts, got {body.get('stop')!r}")
    choices = []
    warnings = cut_warnings(state, prompts, max_tokens)
    if body.get("echo") and max_tokens == 0:
        for i, lp in enumerate(state.backend.token_logprobs(adapter, prompts)):
            text = prompts[i] if isinstance(prompts[i], str) else state.backend.tok.decode(prompts[i])
            choices.append({"index": i, "text": text, "finish_reason": "length", "logprobs": lp})
    else:
        # The hf backend always stops at the tokenizer's end of turn (what clients ask in `stop_token_ids`).
        texts = state.backend.generate_raw([(adapter, p) for p in prompts], [setting] * len(prompts))
        for i, t in enumerate(texts):
            for stop in stops:
                t = t.split(stop)[0]
            choices.append({"index": i, "text": t, "finish_reason": "stop", "logprobs": None})
    answer = {"object": "text_completion", "created": int(time.time()), "model": body.get("model"), "choices": choices}
    return {**answer, "warnings": warnings} if warnings else answer


def _chat(state: ServeState, body: dict) -> dict:
    adapter = state.adapter(body.get("model", state.base_name))
    messages = body.get("messages")
    if not (
        isinstance(messages, list)
        and messages
        and all(
            isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)
            for m in messages
        )
    ):
        raise ValueError('\'messages\' must be a list of {"role": text, "content": text} objects')
    req = GenRequest(adapter, messages, *_sampling(state, body, 64, 1))
    warnings = cut_warnings(state, [render(state.backend.tok, messages)], req.max_new_tokens)
    text = state.backend.generate([req])[0]
    answer = {
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
    }
    return {**answer, "warnings": warnings} if warnings else answer


def make_handler(state: ServeState):
    class Handler(BaseHTTPRequestHandler):
        def _send(self, code: int, obj: dict | str, headers: dict | None = None) -> None:
            # Load and unload answer plain text on success, as vLLM's server does.
            plain = isinstance(obj, str)
            try:
                data = (obj if plain else json.dumps(obj, ensure_ascii=False, allow_nan=False)).encode()
            except ValueError:  # NaN or Inf from the model: `NaN` is not JSON, and not the client's fault
                code = 500
                data = json.dumps({"error": {"message": "the model produced NaN or Inf; no valid JSON answer"}})
                data = data.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8" if plain else "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt, *args):  # quiet by default
            pass

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                return self._send(200, {"object": "list", "data": state.models()})
            self._send(404, {"error": {"message": f"no route {self.path}"}})

        def _body(self) -> dict:
            """The request's JSON object; a bad Content-Length is refused before reading (a negative one
            would read until the client hangs up)."""
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                raise ValueError(f"Content-Length must be a byte count up to {MAX_BODY}, got {length!r}")
            body = json.loads(self.rfile.read(int(length)) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("the request body must be a JSON object")
            return body

        def do_POST(self):
            try:
                body = self._body()
                if not state.admit():
                    message = f"{state.max_queue} requests are already queued; retry later"
                    return self._send(429, {"error": {"message": message}}, {"Retry-After": str(RETRY_AFTER_S)})
                try:
                    with state.lock:
                        return self._route(body)
                finally:
                    state.leave()
            except PermissionError as e:
                self._send(403, {"error": {"message": str(e)}})
            except NotServed as e:
                self._send(404, {"error": {"message": str(e)}})
            except (KeyError, ValueError, TypeError, json.JSONDecodeError) as e:
                self._send(400, {"error": {"message": f"{type(e).__name__}: {e}"}})
            except Exception as e:  # the model failed: the client may retry
                self._send(500, {"error": {"message": f"{type(e).__name__}: {e}"}})

        def _route(self, body: dict) -> None:
            if self.path == "/v1/completions":
                return self._send(200, _completions(state, body))
            if self.path == "/v1/chat/completions":
                return self._send(200, _chat(state, body))
            if self.path == "/v1/load_lora_adapter":
                state.load(body["lora_name"], body["lora_path"])
                return self._send(200, f"Success: LoRA adapter '{body['lora_name']}' added successfully.")
            if self.path == "/v1/unload_lora_adapter":
                state.unload(body["lora_name"])
                return self._send(200, f"Success: LoRA adapter '{body['lora_name']}' removed successfully.")
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    return Handler


def make_server(
    backend,
    base_dir: str,
    allowed_dirs: list[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    base_name: str = "base",
    max_queue: int = 16,
    backlog: int = 128,
    max_prompts: int = 256,
) -> ThreadingHTTPServer:
    """A server (not yet serving) of the base in `base_dir` under `base_name`, admitting `max_queue`
    requests at a time and `max_prompts` prompts a request, with a listen backlog of `backlog` connections;
    port 0 picks a free port (server.server_address[1]), server.state is its state."""
    if not _is_loopback(host):
        print(
            f"warning: serving on {host}: other machines can reach this server, which has no authentication",
            file=sys.stderr,
            flush=True,
        )
    state = ServeState(backend, base_dir, allowed_dirs, base_name, max_queue, max_prompts)
    server = Server((host, port), make_handler(state), backlog)
    server.state = state
    return server


class Server(ThreadingHTTPServer):
    """ThreadingHTTPServer with a listen backlog of `backlog`: its default of 5 reset the connections of a
    burst before any could be answered with a 429."""

    def __init__(self, address, handler, backlog: int):
        self.request_queue_size = backlog  # read by listen() in the base class's __init__
        super().__init__(address, handler)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):  # a name that does not resolve: the bind will say so
        return True
