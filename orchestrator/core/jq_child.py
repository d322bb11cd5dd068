"""The jq helper process: runs one jq program per request line, with allow-listed builtins, under CPU and memory caps.

Started by `jq_sandbox` with an empty environment and `/` as working directory; it reads one JSON request per
line on stdin (`program`, `input`, `max_chars`, `cpu_s`) and writes one JSON line back: `{"results": [...]}` or
`{"error": "...", "limit": bool}`. jq is C code that no deadline inside the rendering process could interrupt;
here the parent kills the whole process when its wall-clock deadline passes, and the kernel enforces the rest.
"""

from __future__ import annotations

import functools
import json
import os
import pwd
import re
import resource
import sys
from typing import Any

#: Address space of the helper. Python and the jq library take about 16 MB; a jq value costs about 16 bytes
#: per element, so a few million elements fit and `[range(1e9)]` or `"x" * 1e9` abort instead of swapping.
MEMORY_LIMIT_BYTES = 256 * 1024 * 1024

#: The jq builtins an expression may call. Everything else jq defines (`env`, `input`, `inputs`,
#: `input_filename`, `get_search_list`, `modulemeta`, `debug`, `stderr`, `halt_error`, and any builtin a
#: future jq adds) is redefined to fail: an allow-list, so a new jq cannot silently widen the sandbox.
ALLOWED_BUILTINS = frozenset(
    """
    IN/1 IN/2 INDEX/1 INDEX/2 JOIN/2 JOIN/3 JOIN/4 abs/0 acos/0 acosh/0 add/0 add/1 all/0 all/1 all/2 any/0 any/1
    any/2 arrays/0 ascii_downcase/0 ascii_upcase/0 asin/0 asinh/0 atan/0 atan2/2 atanh/0 booleans/0 bsearch/1
    capture/1 capture/2 cbrt/0 ceil/0 combinations/0 combinations/1 contains/1 copysign/2 cos/0 cosh/0 del/1
    delpaths/1 drem/2 empty/0 endswith/1 erf/0 erfc/0 error/0 error/1 exp/0 exp10/0 exp2/0 explode/0 expm1/0 fabs/0
    fdim/2 finites/0 first/0 first/1 flatten/0 flatten/1 floor/0 fma/3 fmax/2 fmin/2 fmod/2 format/1 frexp/0
    from_entries/0 fromdate/0 fromdateiso8601/0 fromjson/0 fromstream/1 gamma/0 getpath/1 gmtime/0 group_by/1
    gsub/2 gsub/3 has/1 hypot/2 implode/0 in/1 index/1 indices/1 infinite/0 inside/1 isempty/1 isfinite/0
    isinfinite/0 isnan/0 isnormal/0 iterables/0 j0/0 j1/0 jn/2 join/1 keys/0 keys_unsorted/0 last/0 last/1 ldexp/2
    length/0 lgamma/0 lgamma_r/0 limit/2 localtime/0 log/0 log10/0 log1p/0 log2/0 logb/0 ltrim/0 ltrimstr/1 map/1
    map_values/1 match/1 match/2 max/0 max_by/1 min/0 min_by/1 mktime/0 modf/0 nan/0 nearbyint/0 nextafter/2
    nexttoward/2 normals/0 not/0 now/0 nth/1 nth/2 nulls/0 numbers/0 objects/0 path/1 paths/0 paths/1 pick/1 pow/2
    range/1 range/2 range/3 recurse/0 recurse/1 recurse/2 remainder/2 repeat/1 reverse/0 rindex/1 rint/0 round/0
    rtrim/0 rtrimstr/1 scalars/0 scalb/2 scalbln/2 scan/1 scan/2 select/1 setpath/2 significand/0 sin/0 sinh/0
    skip/2 sort/0 sort_by/1 split/1 split/2 splits/1 splits/2 sqrt/0 startswith/1 strflocaltime/1 strftime/1
    strings/0 strptime/1 sub/2 sub/3 tan/0 tanh/0 test/1 test/2 tgamma/0 to_entries/0 toboolean/0 todate/0
    todateiso8601/0 tojson/0 tonumber/0 tostream/0 tostring/0 transpose/0 trim/0 trimstr/1 trunc/0
    truncate_stream/1 type/0 unique/0 unique_by/1 until/2 utf8bytelength/0 values/0 walk/1 while/2 with_entries/1
    y0/0 y1/0 yn/2
    """.split()  # noqa: SIM905 - a word list reads better than 200 quoted strings
)

_MODULE_DIRECTIVE_RE = re.compile(r"syntax error, unexpected (import|include|module)\b")
_LINE_RE = re.compile(r"\bline (\d+)")


def prelude(builtins: list[str]) -> str:
    """jq text placed before every program: refuse each builtin off the allow-list and bind `$ENV` to `{}`.

    It is one line ending in `(` so the program starts on line 2 inside parentheses: a module directive
    (`import`, `include`, `module`: file reads through the search path) is then a syntax error, and `$ENV`
    stays shadowed whatever the program closes, because an `as` binding reaches to the end of the text.
    """
    definitions = []
    for builtin in sorted(set(builtins) - ALLOWED_BUILTINS):
        name, _, arity = builtin.partition("/")
        params = "(" + "; ".join(f"_p{i}" for i in range(int(arity))) + ")" if int(arity) else ""
        definitions.append(f'def {name}{params}: error("jq: `{name}` is not available in Chorus expressions");')
    return " ".join(definitions) + " {} as $ENV | (\n"


def _user_message(message: str) -> str:
    """A jq error as the flow author should read it: lines counted in their program; module use named."""
    directive = _MODULE_DIRECTIVE_RE.search(message)
    if directive:
        return f"jq: `{directive.group(1)}` is not available in Chorus expressions (no modules or files)"
    return _LINE_RE.sub(lambda m: f"line {max(int(m.group(1)) - 1, 1)}", message)


def _serve(jq: Any) -> None:
    text = prelude(jq.compile("builtins").input_value(None).first())

    @functools.lru_cache(maxsize=256)
    def compiled(program: str) -> Any:
        return jq.compile(text + program + "\n)")

    sys.stdout.write('{"ready": true}\n')
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        request = json.loads(line)
        used = resource.getrusage(resource.RUSAGE_SELF)
        spent = int(used.ru_utime + used.ru_stime)
        # A backstop for when the parent is gone and cannot kill us: SIGXCPU ends the process.
        resource.setrlimit(resource.RLIMIT_CPU, (spent + int(request["cpu_s"]) + 2, resource.RLIM_INFINITY))
        try:
            results = compiled(request["program"]).input_value(request["input"]).all()
            reply = json.dumps({"results": results}, allow_nan=True)
            if len(reply) > request["max_chars"]:
                reply = json.dumps({"error": f"jq produced over {request['max_chars']} characters", "limit": True})
        except ValueError as e:
            reply = json.dumps({"error": _user_message(str(e)), "limit": False})
        except MemoryError:
            reply = json.dumps({"error": "jq ran out of memory", "limit": True})
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


def _drop_root() -> None:
    """As root (a worker that runs scripts as another user), become `nobody`: jq needs no one's files."""
    if os.getuid() != 0:
        return
    try:
        nobody = pwd.getpwnam("nobody")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
    except (KeyError, OSError):
        pass  # no such user, or not allowed (a container without CAP_SETUID): the other walls still stand


def main() -> None:
    """Cap the process, then serve requests until stdin closes (the parent is gone or discarded us)."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # jq aborts on allocation failure: no core files
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # nothing here writes files
    try:
        import jq  # type: ignore[import-not-found, unused-ignore]  # optional: PyPI `jq`
    except ImportError:
        jq = None
    _drop_root()  # after the import: the install may be readable by its owner only
    if jq is None:
        sys.stdout.write('{"ready": true}\n')
        sys.stdout.flush()
        for _ in sys.stdin.buffer:
            sys.stdout.write(json.dumps({"error": "jq needs the `jq` Python package, which is not installed"}) + "\n")
            sys.stdout.flush()
        return
    _serve(jq)


if __name__ == "__main__":
    main()
