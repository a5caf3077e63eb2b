"""``FastInverse``: ``WaveGlow.inverse`` rebuilt around one conditioning GEMM and fused kernels.

Per call (or per fixed-size window when chunked)::

    cond     = fold(upsample(mel))                       # (B, n_mels*G, n), as WaveGlow.condition
    cond_all = W_cond_all @ cond                         # ONE GEMM for every layer of every flow
    X        = z (float32 audio state, (B, G, n))        # flow k works on rows G - C_k .. G in place
    for k in reversed(flows):
        h = start(X[rows of y_a])                        # kernel: fp32 state -> dtype, bias fused
        for each layer i:
            inp  = dilated_conv(h)                        # cuDNN conv1d, or k tap GEMMs over a padded h
            acts = gate(inp, cond_all[k, i], bias)       # kernel
            rs   = W_rs @ acts                           # cuBLAS
            h += rs_res + b; skip (=|+=) rs_skip + b     # kernel
        X[rows] = W_inv @ (y_a, (y_b - end_b(skip)) * exp(-end_s(skip)))   # kernel: end conv + coupling + 1x1
    audio = X.transpose(1, 2).reshape(B, -1)

The early outputs need no concatenation: the latent already holds them in the rows that the earlier flow
steps read (``z`` is NVIDIA's layout, early outputs first), so the state is updated in place.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..models.waveglow import upsample_condition
from . import reference
from .packing import ModelPack


class FastInverse:
    """Callable ``(z (B, G, n), mel (B, n_mels, F)) -> audio (B, G * n)``, the same function as
    ``WaveGlow.inverse``. Build it with :func:`waveflow.kernels.prepare_inverse`.

    The output has ``z``'s dtype. Activations are in ``pack.dtype``; the audio state is float32 (a strict
    improvement over ``model.half().inverse``, which keeps it in fp16, and free: it is ``G`` rows).

    Args:
        pack: packed weights (:func:`waveflow.kernels.packing.pack_model`).
        ops: the kernel set, :mod:`.reference` (torch) or :mod:`.triton_ops`.
        conv: ``"conv1d"`` (``F.conv1d``) or ``"shift"`` (k accumulated GEMMs over a zero-margined ``h``).
        chunk: process fixed windows of ``chunk + 2 * context`` time steps (``n = T / G`` columns) and keep
            the central ``chunk`` of each (windows at the ends are shifted inwards, so every window has the
            same shape). ``None``: the whole input at once.
        context: columns of context on each side; default the exact receptive field
            (``n_flows * (k - 1) / 2 * (2**n_layers - 1)``), which makes chunked output equal to unchunked
            output up to rounding. Smaller values trade exactness for speed.
        graphs: capture each window shape in a CUDA graph on first use and replay it (CUDA only).
        compile: wrap the per-window core in ``torch.compile`` (torch backend).
    """

    def __init__(
        self,
        pack: ModelPack,
        ops,
        backend: str,
        conv: str = "conv1d",
        chunk: int | None = None,
        context: int | None = None,
        graphs: bool = False,
        compile: bool = False,
    ):
        if conv not in ("conv1d", "shift"):
            raise ValueError(f"conv must be 'conv1d' or 'shift', got {conv!r}")
        self.pack, self.ops, self.backend, self.conv = pack, ops, backend, conv
        self.chunk = chunk
        self.context = pack.receptive_field() if context is None else context
        if chunk is not None and (chunk <= 0 or self.context < 0):
            raise ValueError(f"chunk must be positive and context >= 0, got {chunk}, {self.context}")
        self.graphs = graphs
        if graphs and pack.w_cond.device.type != "cuda":
            raise ValueError("graphs=True needs a CUDA model")
        self._graphs: dict = {}
        self._pool = None
        self._core: Callable = torch.compile(self._core_eager, dynamic=False) if compile else self._core_eager

    @property
    def dtype(self) -> torch.dtype:
        return self.pack.dtype

    # ------------------------------------------------------------------------------------------- public
    @torch.inference_mode()
    def __call__(self, z: torch.Tensor, mel: torch.Tensor, known: torch.Tensor | None = None) -> torch.Tensor:
        """``(z (B, G, n), mel (B, n_mels, F)) -> audio (B, G * n)`` in ``z.dtype``; ``known``: as in
        ``WaveGlow.inverse`` (a recursive prior's first samples, already made)."""
        p = self.pack
        if z.dim() != 3 or z.shape[1] != p.n_group:
            raise ValueError(f"z must be (B, {p.n_group}, T // {p.n_group}), got shape {tuple(z.shape)}")
        B, G, n = z.shape
        cond = self.condition(mel, n * G)
        audio = self._windows(z, cond).transpose(1, 2).reshape(B, -1)
        if p.prior is not None:  # the prior (matrix products and a short recursion in float32): no kernel
            audio = p.prior.inverse(audio, mel, known=known)
        return audio.to(z.dtype)

    def condition(self, mel: torch.Tensor, num_samples: int) -> torch.Tensor:
        """``WaveGlow.condition`` in the working dtype: ``(B, n_mels, F) -> (B, n_mels * G, n)``."""
        p = self.pack
        if p.mel_shift:
            mel = mel.float() + p.mel_shift  # shifted in float32, then cast
        return upsample_condition(mel.to(p.dtype), p.w_up, p.b_up, p.hop, p.n_group, num_samples)

    def windows(self, n: int) -> list[tuple[int, int, int, int]]:
        """``(start, stop, keep_from, keep_to)`` column ranges of the windows for an input of ``n`` columns."""
        if self.chunk is None:
            return [(0, n, 0, n)]
        width = self.chunk + 2 * self.context
        if n <= width:
            return [(0, n, 0, n)]
        out = []
        for c0 in range(0, n, self.chunk):
            start = min(max(c0 - self.context, 0), n - width)
            out.append((start, start + width, c0, min(c0 + self.chunk, n)))
        return out

    # ----------------------------------------------------------------------------------------- internals
    def _windows(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        B, G, n = z.shape
        wins = self.windows(n)
        if len(wins) == 1:
            return self._run(z, cond)
        x = torch.empty(B, G, n, dtype=torch.float32, device=z.device)
        for start, stop, k0, k1 in wins:
            out = self._run(z[..., start:stop], cond[..., start:stop])
            x[..., k0:k1] = out[..., k0 - start : k1 - start]
        return x

    def _run(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if not self.graphs:
            return self._core(z, cond)
        key = (tuple(z.shape), z.dtype, tuple(cond.shape))
        entry = self._graphs.get(key)
        if entry is None:
            entry = self._graphs[key] = self._capture(z, cond)
        graph, static_z, static_cond, static_out = entry
        static_z.copy_(z)
        static_cond.copy_(cond)
        graph.replay()
        return static_out

    def _capture(self, z: torch.Tensor, cond: torch.Tensor):
        """Warm up (Triton compiles, cuBLAS picks kernels) on a side stream, then capture one window."""
        static_z, static_cond = z.clone(), cond.contiguous().clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._core(static_z, static_cond)
        torch.cuda.current_stream().wait_stream(stream)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self._core(static_z, static_cond)
        return graph, static_z, static_cond, static_out

    def _core_eager(self, z: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """One window: ``(z (B, G, n), cond (B, n_mels * G, n)) -> float32 state (B, G, n)``."""
        p, ops = self.pack, self.ops
        B, _, n = z.shape
        C, L, dt, dev = p.n_channels, p.n_layers, p.dtype, z.device
        x = z.to(torch.float32, copy=True)
        cond_all = torch.matmul(p.w_cond, cond)  # (B, n_flows * L * 2C, n): every cond layer, one GEMM
        pad = p.max_pad if self.conv == "shift" else 0
        h_pad = torch.zeros(B, C, n + 2 * pad, dtype=dt, device=dev)  # zero margins = the convs' padding
        h = h_pad[..., pad : pad + n]
        inp = torch.empty(B, 2 * C, n, dtype=dt, device=dev)
        acts = torch.empty(B, C, n, dtype=dt, device=dev)
        rs = torch.empty(B, 2 * C, n, dtype=dt, device=dev)
        rs_last = torch.empty(B, C, n, dtype=dt, device=dev)
        skip = torch.empty(B, C, n, dtype=dt, device=dev)
        for k in reversed(range(len(p.flows))):
            f = p.flows[k]
            ops.start_conv(x, f.row0, f.half, f.w_start, f.b_start, h)
            for i in range(L):
                conv_out = self._dilated_conv(f, i, h_pad, h, pad, inp)
                ops.gated_activation(conv_out, cond_all, p.cond_row0(k, i), f.b_gate[i], acts)
                last = i == L - 1
                out = rs_last if last else rs
                torch.matmul(f.w_rs[i], acts, out=out)
                ops.res_skip_accumulate(out, f.b_rs[i], h, skip, has_res=not last, first=i == 0)
            ops.coupling_inverse(skip, x, f.row0, f.n_ch, f.w_shift, f.b_shift, f.w_logs, f.b_logs, f.w_inv)
        return x

    def _dilated_conv(
        self, f, i: int, h_pad: torch.Tensor, h: torch.Tensor, pad: int, out: torch.Tensor
    ) -> torch.Tensor:
        """Layer ``i``'s dilated conv of ``h`` without bias, ``(B, C, n) -> (B, 2C, n)``."""
        d = f.dilations[i]
        if self.conv == "conv1d":
            return F.conv1d(h, f.w_in[i], None, padding=(self.pack.kernel_size - 1) // 2 * d, dilation=d)
        n = h.shape[-1]
        half_k = (self.pack.kernel_size - 1) // 2
        for j, w in enumerate(f.w_taps[i]):
            off = pad + (j - half_k) * d
            tap = h_pad[..., off : off + n]
            if j == 0:
                torch.matmul(w, tap, out=out)
            else:
                out.baddbmm_(w.expand(out.shape[0], -1, -1), tap)
        return out


__all__ = ["FastInverse", "reference"]
