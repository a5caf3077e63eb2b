"""A corpus of hostile and malformed PyTorch / NumPy files for tests/test_hostile.py, made from scratch.

Files are written byte by byte where torch would refuse to write them: :func:`torch_zip` and :func:`torch_legacy`
write torch's two serialisation formats around any pickle, with storages (:class:`Record`) whose declared size,
compression and content the test chooses, and tensors (:class:`View`) with any size, stride and offset.
:func:`pickled_module` pickles a stand-in ``nn.Module`` tree under NVIDIA's class paths (``glow.WaveGlow``)
with any state. Code-carrying payloads ``touch`` a marker file if anything ever runs them.
"""

from __future__ import annotations

import contextlib
import copyreg
import io
import pickle
import struct
import sys
import types
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

ITEMSIZE = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "LongStorage": 8, "ByteStorage": 1,
            "cuda.FloatStorage": 4}
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001


# ------------------------------------------------------------------------------------------ torch formats
@dataclass(eq=False)
class Record:
    """A storage: ``data`` (or ``zeros`` zero bytes, streamed), declared as ``numel`` elements of ``dtype``."""

    key: str
    data: bytes = b""
    dtype: str = "FloatStorage"
    numel: int | None = None
    zeros: int = 0

    @property
    def declared(self) -> int:
        size = len(self.data) + self.zeros
        return self.numel if self.numel is not None else size // ITEMSIZE[self.dtype]


class View:
    """A tensor viewing a :class:`Record` as ``size``/``stride``/``offset`` say, honest or not."""

    def __init__(self, record: Record, size, stride, offset: int = 0):
        self.args = (record, offset, tuple(size), tuple(stride), False, OrderedDict())

    def __reduce__(self):
        return torch._utils._rebuild_tensor_v2, self.args


def floats(key: str, values) -> Record:
    return Record(key, np.asarray(values, dtype="<f4").tobytes())


def tensor(key: str, values) -> View:
    """An honest float32 tensor of ``values`` (any shape)."""
    a = np.asarray(values, dtype="<f4")
    strides = [int(s) // 4 for s in a.strides] if a.ndim else []
    return View(floats(key, a.ravel()), a.shape, strides)


class _Pickler(pickle.Pickler):
    def __init__(self, file, protocol: int, legacy: bool):
        super().__init__(file, protocol=protocol)
        self.legacy, self.records = legacy, {}

    def persistent_id(self, obj):
        if not isinstance(obj, Record):
            return None
        self.records.setdefault(obj.key, obj)
        storage_type = torch.cuda if obj.dtype.startswith("cuda.") else torch
        location = "cuda:0" if obj.dtype.startswith("cuda.") else "cpu"
        pid = ("storage", getattr(storage_type, obj.dtype.split(".")[-1]), obj.key, location, obj.declared)
        return pid + (None,) if self.legacy else pid


def dumps(obj: Any, protocol: int = 2, legacy: bool = False) -> tuple[bytes, dict[str, Record]]:
    buf = io.BytesIO()
    pickler = _Pickler(buf, protocol, legacy)
    pickler.dump(obj)
    return buf.getvalue(), pickler.records


def torch_zip(path: Path, obj: Any = None, *, pickled: bytes | None = None, records: dict | None = None,
              deflate: bool = False, extra: dict[str, bytes] | None = None) -> Path:
    """torch's zip format holding ``obj`` (or the raw ``pickled`` bytes) and its records."""
    if pickled is None:
        pickled, records = dumps(obj)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pickled)
        z.writestr("archive/.format_version", "1")
        z.writestr("archive/byteorder", "little")
        for key, rec in (records or {}).items():
            info = zipfile.ZipInfo(f"archive/data/{key}")
            info.compress_type = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
            with z.open(info, "w", force_zip64=rec.zeros > 1 << 30) as f:
                f.write(rec.data)
                for _ in range(rec.zeros >> 20):
                    f.write(bytes(1 << 20))
        for name, data in (extra or {}).items():
            z.writestr(f"archive/{name}", data)
        z.writestr("archive/version", "3\n")
    return path


def torch_legacy(path: Path, obj: Any = None, *, pickled: bytes | None = None, records: dict | None = None) -> Path:
    """torch's legacy (pre-1.6) format: magic, protocol, system info and ``obj`` pickled, then the raw records."""
    if pickled is None:
        pickled, records = dumps(obj, legacy=True)
    records = records or {}
    info = {"protocol_version": LEGACY_PROTOCOL, "little_endian": True,
            "type_sizes": {"short": 2, "int": 4, "long": 4}}
    with open(path, "wb") as f:
        for header in (LEGACY_MAGIC, LEGACY_PROTOCOL, info):
            pickle.dump(header, f, protocol=2)
        f.write(pickled)
        pickle.dump(list(records), f, protocol=2)
        for rec in records.values():
            f.write(struct.pack("<q", rec.declared))
            f.write(rec.data + bytes(rec.zeros))
    return path


# ------------------------------------------------------------------------------------------ NVIDIA-like modules
class Module:
    """Pickles as an ``nn.Module`` of class ``class_path`` with the state ``state`` (via ``copyreg.__newobj__``)."""

    def __init__(self, class_path: str, **state):
        self.class_path = class_path
        self.state = {"_parameters": OrderedDict(), "_buffers": OrderedDict(), "_modules": OrderedDict(),
                      "training": False, **state}

    @property
    def __class__(self):  # what pickle checks against __newobj__'s class
        return _fake_class(self.class_path)

    def __reduce_ex__(self, protocol):
        return copyreg.__newobj__, (_fake_class(self.class_path),), self.state


_FAKE_CLASSES: dict[str, type] = {}


def _fake_class(class_path: str) -> type:
    module, _, name = class_path.rpartition(".")
    if class_path not in _FAKE_CLASSES:
        _FAKE_CLASSES[class_path] = type(name, (), {"__module__": module, "__qualname__": name})
    return _FAKE_CLASSES[class_path]


@contextlib.contextmanager
def _fake_modules():
    """The fake classes where pickle looks for them (``glow.WaveGlow``, ``torch.nn.modules.conv.Conv1d``) while
    pickling; every module and attribute is put back afterwards."""
    added, replaced = [], []
    try:
        for class_path, cls in _FAKE_CLASSES.items():
            module = class_path.rpartition(".")[0]
            if module not in sys.modules:
                sys.modules[module] = types.ModuleType(module)
                added.append(module)
            replaced.append((sys.modules[module], cls.__name__, getattr(sys.modules[module], cls.__name__, None)))
            setattr(sys.modules[module], cls.__name__, cls)
        yield
    finally:
        for owner, name, original in reversed(replaced):
            if original is None:
                delattr(owner, name)
            else:
                setattr(owner, name, original)
        for module in added:
            del sys.modules[module]


def conv(class_path: str = "torch.nn.modules.conv.Conv1d", **params) -> Module:
    return Module(class_path, _parameters=OrderedDict(params))


def pickled_module(path: Path, root: Module, fmt: str = "zip") -> Path:
    """``{"model": root}`` in ``fmt`` (``zip`` or ``legacy``), pickled under NVIDIA's class paths."""
    _walk_classes(root, set())
    with _fake_modules():
        pickled, records = dumps({"model": root, "iteration": 1}, legacy=fmt == "legacy")
    write = torch_zip if fmt == "zip" else torch_legacy
    return write(path, pickled=pickled, records=records)


def _walk_classes(module: Module, seen: set) -> None:
    if id(module) in seen:
        return
    seen.add(id(module))
    _fake_class(module.class_path)
    for child in module.state.get("_modules", {}).values() if isinstance(module.state.get("_modules"), dict) else ():
        if isinstance(child, Module):
            _walk_classes(child, seen)


# ------------------------------------------------------------------------------------------ code carriers
def shell(marker: Path) -> str:
    return f"touch {marker}"


def raw_pickles(marker: Path) -> dict[str, bytes]:
    """Hand-written pickles that run ``touch marker`` when plainly unpickled (see test_corpus_is_dangerous)."""
    cmd = shell(marker).encode()
    arg = b"X" + struct.pack("<I", len(cmd)) + cmd
    short = b"\x8c" + bytes([len(cmd)]) + cmd
    return {
        # GLOBAL os.system, REDUCE
        "GLOBAL": b"\x80\x02cos\nsystem\n" + arg + b"\x85R.",
        # protocol 4: STACK_GLOBAL from two string constants
        "STACK_GLOBAL": b"\x80\x04\x8c\x02os\x94\x8c\x06system\x94\x93\x94" + short + b"\x85R.",
        # STACK_GLOBAL after pushing and POPping an allowed name: the real stack top is os.system
        "STACK_GLOBAL_POP": (b"\x80\x04\x8c\x02os\x8c\x06system\x8c\x0bcollections\x8c\x0bOrderedDict00\x93"
                             + short + b"\x85R."),
        # protocol 0: INST builds os.system(cmd) straight from the mark
        "INST": b"(S'" + cmd + b"'\nios\nsystem\n.",
        # copyreg's extension registry: code 0xF0 must be registered to mean os.system (the test does so)
        "EXT1": b"\x80\x02\x82\xf0" + arg + b"\x85R.",
        # copyreg._reconstructor, the protocol-0/1 way to build any class
        "copyreg": b"\x80\x02ccopyreg\n_reconstructor\ncos\n_wrap_close\nc__builtin__\nobject\nN\x87R.",
        # a 10-byte memory bomb for CPython's C unpickler (memo sized by the largest index: 8 GB)
        "memo_bomb": b"\x80\x02]r\xff\xff\xff\x1f.",
    }


class Reduce:
    """``__reduce__`` to ``func(*args)``: what torch.save makes of a hostile object."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def deep_list(depth: int) -> bytes:
    """A pickle of a list nested ``depth`` deep, written flat (CPython's pickler would recurse)."""
    return b"\x80\x02" + b"]" * depth + b"a" * (depth - 1) + b"."


def deep_payload(depth: int) -> bytes:
    """``{"state_dict": {"w": <list nested depth deep>}}`` as a pickle."""
    return (b"\x80\x02}X\x0a\x00\x00\x00state_dict}X\x01\x00\x00\x00w" + deep_list(depth)[2:-1]
            + b"ss.")


def cyclic_payload() -> bytes:
    """``d = {"state_dict": d}``: a dict holding itself (memo GET)."""
    return b"\x80\x02}q\x00X\x0a\x00\x00\x00state_dictq\x01h\x00s."


# ------------------------------------------------------------------------------------------ the corpora
SYSTEM = r"'(os|posix)\.system'"  # how a refusal names os.system (pickled as posix.system on Linux)


def own_payload(folder: Path, n_mels: int = 8, hop: int = 16, **model) -> dict:
    """A valid waveflow payload of a tiny random model, as a plain dict to change and ``torch.save``."""
    from waveflow import MelConfig, WaveGlow, WaveGlowConfig, save_model

    cfg = WaveGlowConfig(**{"n_mels": n_mels, "n_flows": 2, "n_group": 4, "n_early_size": 0, "n_layers": 1,
                            "n_channels": 4, "hop_length": hop, **model})
    torch.manual_seed(0)
    path = save_model(WaveGlow(cfg), folder / f"base-{n_mels}-{hop}.pt", MelConfig(n_mels=n_mels, hop_length=hop))
    return torch.load(path, weights_only=True)


def _own(payload: dict, change: dict | None = None, drop: str = "", state: dict | None = None,
         config: dict | None = None) -> dict:
    out = {**payload, **(change or {})}
    out.pop(drop, None)
    if state is not None:
        out["state_dict"] = {**payload["state_dict"], **state}
    if config is not None:
        out["model_config"] = {**payload["model_config"], **config}
    return out


def checkpoint_corpus(folder: Path, marker: Path) -> dict[str, tuple[Path, str]]:
    """Hostile and malformed checkpoints: ``{name: (file, regex its refusal must match)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, str]] = {}

    def save(name: str, obj: Any, pattern: str, **kwargs) -> None:
        path = folder / f"{name}.pt"
        torch.save(obj, path, **kwargs)
        files[name] = (path, pattern)

    def write(name: str, writer, pattern: str, *args, **kwargs) -> None:
        files[name] = (writer(folder / f"{name}.pt", *args, **kwargs), pattern)

    legacy = {"_use_new_zipfile_serialization": False}
    # --- code carriers, both serialisation formats, pickle protocols 2 and 4, hand-written opcodes
    touch = Reduce(__import__("os").system, shell(marker))
    save("reduce_zip", {"model": touch}, SYSTEM)
    save("reduce_legacy", {"model": touch}, SYSTEM, **legacy)
    save("reduce_p4_zip", {"model": touch}, SYSTEM, pickle_protocol=4)
    save("reduce_p4_legacy", {"model": touch}, SYSTEM, pickle_protocol=4, **legacy)
    save("exec_zip", {"state_dict": Reduce(exec, f"open({str(marker)!r}, 'w').close()")}, r"'builtins\.exec'")
    expect = {"GLOBAL": SYSTEM, "STACK_GLOBAL": SYSTEM, "STACK_GLOBAL_POP": SYSTEM, "INST": SYSTEM,
              "EXT1": "extension code", "copyreg": r"'copyreg\._reconstructor'", "memo_bomb": "memo index"}
    for name, raw in raw_pickles(marker).items():
        (folder / f"raw_{name}.pt").write_bytes(raw)  # a bare pickle: read as the legacy format
        files[f"raw_{name}"] = (folder / f"raw_{name}.pt", expect[name])
        write(f"zip_{name}", torch_zip, expect[name], pickled=raw)
    write("torchscript", torch_zip, "TorchScript", {"a": 1}, extra={"constants.pkl": b"\x80\x02)."})
    meta = torch.empty(10**6, 10**6, device="meta")
    save("meta_tensor", {"state_dict": {"WN.0.start.weight": meta}}, "_rebuild_meta_tensor_no_storage")
    sparse = torch.sparse_coo_tensor(torch.tensor([[0], [0]]), torch.tensor([1.0]), (10**6, 10**6), check_invariants=True)
    save("sparse_tensor", {"state_dict": {"WN.0.start.weight": sparse}}, "_rebuild_sparse_tensor")

    # --- size bombs: stride-0 and overlapping views, zip bombs, declared sizes beyond the bytes present
    own = own_payload(folder)
    one = floats("0", [0.0])
    stride0 = {"upsample.weight": torch.zeros(1).expand(100_000, 100_000)}  # 40 GB if materialised
    save("stride0_zip", _own(own, state=stride0), "overlap")
    save("stride0_legacy", _own(own, state=stride0), "overlap", **legacy)
    write("stride0_handmade", torch_zip, "overlap", {"state_dict": {"w": View(one, (10**5, 10**5), (0, 0))}})
    write("stride0_handmade_legacy", torch_legacy, "overlap", {"state_dict": {"w": View(one, (10**5, 10**5), (0, 0))}})
    save("overlap", _own(own, state={"upsample.weight": torch.zeros(2000).as_strided((1000, 1000), (1, 1))}), "overlap")
    write("past_storage", torch_zip, "readable|past", {"state_dict": {"w": View(floats("0", [0.0] * 8), (10,), (1,), 5)}})
    bomb = Record("0", zeros=256 << 20)  # 256 MB of zeros, deflated to 0.25 MB
    write("zip_bomb", torch_zip, "zip bomb", {"state_dict": {"w": View(bomb, (64 << 20,), (1,))}}, deflate=True)
    write("huge_storage_zip", torch_zip, "readable", {"state_dict": {"w": View(Record("0", bytes(16), numel=2**40), (4,), (1,))}})
    write("huge_storage_legacy", torch_legacy, "declare", {"state_dict": {"w": View(Record("0", bytes(16), numel=2**40), (4,), (1,))}})
    shared = floats("0", [0.0] * 1000)
    write("shared_views", torch_zip, "views sharing", {f"w{i}": View(shared, (1000,), (1,)) for i in range(3000)})
    save("config_1024_channels", _own(own, config={"n_channels": 1024}), "do not fit")  # 1.4 KB, 4 GB model
    save("config_1e8_flows", _own(own, config={"n_flows": 10**8}), "n_flows must be at most")
    save("config_20000_flows", _own(own, config={"n_flows": 20000}), "n_flows must be at most")
    save("config_zero_mels", _own(own, config={"n_mels": 0}), "n_mels must be positive")
    save("config_huge_fft", _own(own, change={"mel_config": {**own["mel_config"], "n_fft": 10**9, "win_length": 10**9}}),
         "n_fft must be at most")

    # --- malformed structures made of allowed types only
    save("own_no_state_dict", _own(own, drop="state_dict"), "without 'state_dict'")
    save("own_meta_list", _own(own, change={"meta": [1, 2]}), "'meta' is a list")
    save("own_config_list", _own(own, change={"model_config": [1, 2]}), "'model_config' is a list")
    save("own_config_int_keys", _own(own, change={"model_config": {1: 2, "n_mels": 8}}), "key of type int")
    save("own_version_text", _own(own, change={"version": "1"}), "version")
    save("own_weight_text", _own(own, state={"upsample.bias": "zeros"}), "not a tensor")
    save("own_weight_int", _own(own, state={"upsample.bias": torch.zeros(8, dtype=torch.int64)}), "dtype int64")
    save("own_weight_key_int", _own(own, change={"state_dict": {**own["state_dict"], 5: torch.zeros(1)}}), "key of type int")
    cyclic_meta: dict = {}
    cyclic_meta["self"] = cyclic_meta
    save("own_meta_cycle", _own(own, change={"meta": cyclic_meta}, state={"upsample.bias": torch.full((8,), float("nan"))}),
         r"'upsample\.bias' holds NaN")
    save("nan_weights", _own(own, state={"flows.1.coupling.wn.end.weight": torch.full((4, 4, 1), float("nan"))}),
         r"'flows\.1\.coupling\.wn\.end\.weight' holds NaN")
    save("inf_weights", _own(own, state={"upsample.weight": torch.full((8, 8, 64), float("inf"))}),
         r"'upsample\.weight' holds NaN or infinite")
    write("cycle", torch_zip, "no WaveGlow weights", pickled=cyclic_payload())
    write("deep_3000_zip", torch_zip, "nest more than", pickled=deep_payload(3000))
    write("deep_3000_legacy", torch_legacy, "nest more than", pickled=deep_payload(3000))
    w = tensor  # NVIDIA / DLE names
    up = w("up", np.zeros((8, 8, 64)))
    write("dle_v_without_g", torch_zip, "has no 'WN.0.start.weight_g'",
          {"state_dict": {"upsample.weight": up, "WN.0.start.weight_v": w("v", np.ones((4, 2, 1)))}})
    write("dle_flow_index_text", torch_zip, "is not a number",
          {"state_dict": {"upsample.weight": up, "WN.x.start.weight": w("s", np.ones((4, 2, 1)))}})
    write("dle_zero_mels", torch_zip, "non-zero dimensions",
          {"state_dict": {"upsample.weight": View(Record("z", b""), (0, 0, 1024), (1024, 1024, 1)),
                          "WN.0.start.weight": w("s", np.ones((4, 2, 1)))}})
    write("dle_missing_convinv", torch_zip, "missing 'convinv.0.conv.weight'",
          {"state_dict": {"upsample.weight": up, "WN.0.start.weight": w("s", np.ones((4, 2, 1))),
                          "WN.0.in_layers.0.weight": w("i", np.ones((8, 4, 3))),
                          "WN.0.cond_layer.weight": w("c", np.ones((8, 32, 1))), "WN.0.end.weight": w("e", np.ones((4, 4, 1)))}})
    write("dle_key_int", torch_zip, "not text", {"state_dict": {5: w("s", [1.0]), "WN.0.start.weight": w("t", [1.0])}})
    root = Module("glow.WaveGlow", _parameters=[1, 2])
    write("nv_parameters_list", pickled_module, "_parameters of type list", root)
    write("nv_parameters_list_legacy", pickled_module, "_parameters of type list", root, "legacy")
    loop = Module("glow.WaveGlow", _modules=OrderedDict(upsample=conv("torch.nn.modules.conv.ConvTranspose1d")))
    loop.state["_modules"]["WN"] = loop
    write("nv_cycle", pickled_module, "reached twice", loop)
    write("nv_cycle_legacy", pickled_module, "reached twice", loop, "legacy")
    upsample = conv("torch.nn.modules.conv.ConvTranspose1d", weight=View(one, (10**4, 10**4, 1024), (0, 0, 0)))
    write("nv_stride0", pickled_module, "overlap", Module("glow.WaveGlow", _modules=OrderedDict(upsample=upsample)))
    return files


def mel_corpus(folder: Path, marker: Path, n_mels: int = 80) -> dict[str, tuple[Path, str]]:
    """Hostile mel files: ``{name: (file, regex the refusal must match)}``."""
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, tuple[Path, str]] = {}

    def add(name: str, path: Path, pattern: str) -> None:
        files[name] = (path, pattern)

    torch.save(torch.zeros(n_mels, 1).expand(n_mels, 10**7), folder / "stride0.pt")  # 3.2 GB as a copy
    add("stride0", folder / "stride0.pt", "overlap")
    bomb = Record("0", zeros=256 << 20)
    add("zip_bomb", torch_zip(folder / "zip_bomb.pt", View(bomb, (n_mels, (64 << 20) // n_mels), ((64 << 20) // n_mels, 1)),
                              deflate=True), "zip bomb")
    add("pickle_GLOBAL", torch_zip(folder / "pickle_GLOBAL.pt", pickled=raw_pickles(marker)["GLOBAL"]), SYSTEM)
    torch.save(Reduce(__import__("os").system, shell(marker)), folder / "pickle_p4.pt", pickle_protocol=4)
    add("pickle_p4", folder / "pickle_p4.pt", SYSTEM)
    torch.save(Reduce(__import__("os").system, shell(marker)), folder / "pickle_legacy.pt",
               _use_new_zipfile_serialization=False)
    add("pickle_legacy", folder / "pickle_legacy.pt", r"refused for safety")
    torch.save(torch.empty(n_mels, 10**12, device="meta"), folder / "meta.pt")
    add("meta", folder / "meta.pt", "_rebuild_meta_tensor_no_storage")
    torch.save(torch.sparse_coo_tensor(torch.tensor([[0], [0]]), torch.tensor([1.0]), (n_mels, 10**12),
                                       check_invariants=True), folder / "sparse.pt")
    add("sparse", folder / "sparse.pt", "sparse")
    add("deep", torch_zip(folder / "deep.pt", pickled=deep_list(3000)), "not a tensor")
    add("huge_header", _npy_header_only(folder / "huge_header.npy", (n_mels, 10**12)), "truncated")
    add("huge_header_2", _npy_header_only(folder / "huge_header_2.npy", (10**9, 10**9)), "truncated")
    return files


def _npy_header_only(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> Path:
    """A ``.npy`` header declaring ``shape`` with a few bytes of data after it."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": dtype, "fortran_order": False, "shape": shape})
        f.write(bytes(64))
    return path


def sparse_npy(path: Path, shape: tuple[int, ...]) -> Path:
    """An honest ``.npy`` of ``shape`` float32 zeros that takes no disk (a sparse file)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": shape})
        f.truncate(f.tell() + 4 * int(np.prod(shape)))
    return path
