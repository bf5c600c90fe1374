"""Decoding for :class:`~flanlab.inference.hf.HFLM`: batched greedy and seeded sampling, n samples
drawn from one encoded prompt, shared few-shot prefixes run once (and, on the CPU, read once per
decoding step rather than copied into every row), each sequence stopping at its own stop sequence and
leaving the batch when it does."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flanlab.core.log import get_logger, progress
from flanlab.inference.base import GenerateRequest
from flanlab.inference.kv import merge_caches, mergeable, output_cache, shared_cache
from flanlab.inference.planning import group_rows
from flanlab.inference.prefix_attention import PrefixGroups, PrefixKV, eligible, using_prefix_attention

if TYPE_CHECKING:
    from flanlab.inference.hf import HFLM

__all__ = ["Generator", "sample_seed", "seed_of_sample"]

log = get_logger(__name__)

_SEED_MUL = 1_000_003  # odd, so invertible modulo 2**63
_SEED_MOD = 2**63


def sample_seed(seed: int, k: int) -> int:
    """The torch generator seed of sample ``k`` of a request with ``seed``: each sample has its own
    stream, so a sample does not depend on how many others are drawn or which batch it sits in."""
    return (seed * _SEED_MUL + k) % _SEED_MOD


def seed_of_sample(seed: int, k: int) -> int:
    """The seed of a one-sample request that draws exactly sample ``k`` of a request with ``seed``
    (k separate requests reproduce one request's k samples)."""
    return (sample_seed(seed, k) * pow(_SEED_MUL, -1, _SEED_MOD)) % _SEED_MOD


def is_oom(e: BaseException) -> bool:
    """Whether ``e`` is an out-of-memory error (CUDA raises several kinds)."""
    import torch

    return isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower()


class Generator:
    """Generation over an :class:`HFLM`'s model, tokenizer and kept prefix caches."""

    def __init__(self, lm: HFLM) -> None:
        self.lm = lm
        on_gpu = str(lm.device).startswith("cuda")
        # Sequences decoded together with batch_size="auto".
        self.max_rows = 256 if on_gpu else 32

    def finish_text(self, ids: list[int], stop: Sequence[str]) -> str:
        """Decode generated ids and cut the text at the first stop sequence."""
        text = self.lm.tokenizer.decode(ids, skip_special_tokens=True)
        cut = min((text.find(s) for s in stop if s and s in text), default=-1)
        return text[:cut] if cut >= 0 else text

    def _stop_ids(self) -> set[int]:
        ids = {self.lm.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.lm.model, "generation_config", None), "eos_token_id", None)
        if isinstance(gen_eos, int):
            ids.add(gen_eos)
        elif isinstance(gen_eos, list):
            ids.update(gen_eos)
        return {i for i in ids if i is not None}

    def tokens(self, requests: Sequence[GenerateRequest], prompt_ids: Sequence[list[int] | None] | None = None,
               on_token: Callable[[int, int, int], None] | None = None):
        """Yield ``(request index, [token ids per sample])``; generated ids exclude the end-of-text
        token and whatever follows a stop sequence's token.

        ``prompt_ids``: token ids to use instead of encoding a request's prompt (None: encode it),
        for clients that send tokens. ``on_token(request index, sample, token id)`` is called as each
        token is chosen (for streaming); greedy requests decode one sample, reported as sample 0."""
        import torch

        prompts = []
        for k, r in enumerate(requests):
            if r.n < 1 or r.max_new_tokens < 0:
                raise ValueError(f"generate: n must be >= 1 and max_new_tokens >= 0, got {r.n}, {r.max_new_tokens}")
            given = prompt_ids[k] if prompt_ids is not None else None
            if given is not None:
                keep = max(1, self.lm.max_length - r.max_new_tokens) if self.lm.kind == "causal" else self.lm.max_length
                ids = list(given)[-keep:] or [self.lm.tokenizer.eos_token_id]
            elif self.lm.kind == "causal":
                ids = self.lm.special_prefix + self.lm.encode(r.prompt)
                keep = max(1, self.lm.max_length - r.max_new_tokens)
                ids = ids[-keep:] or [self.lm.tokenizer.eos_token_id]
            else:
                ids = self.lm.tokenizer(r.prompt).input_ids[-self.lm.max_length:]
            prompts.append(ids)
        with self.lm.inference(), progress(transient=True) as bar:
            task = bar.add_task("generating", total=len(requests)) if self.lm.show_progress else None
            pending = self._decode_batches(prompts, requests)
            while pending:
                chunk = pending.pop(0)
                try:
                    done = list(self._batch(requests, prompts, chunk, on_token))
                except (RuntimeError, torch.OutOfMemoryError) as e:
                    if not is_oom(e) or len(chunk) == 1:
                        raise
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    self.lm.token_budget = max(1, self.lm.token_budget // 2)
                    self.max_rows = max(1, self.max_rows // 2)
                    log.warning("out of memory generating %d prompts at once; halving the batch", len(chunk))
                    pending[:0] = [chunk[: len(chunk) // 2], chunk[len(chunk) // 2:]]
                    continue
                yield from done
                if task is not None:
                    bar.advance(task, len(chunk))

    def _decode_batches(self, prompts, requests) -> list[list[tuple[int, int, int]]]:
        """Decoding batches of ``(prefix group, prefix length, prompt index)``, groups one after the
        other, longest prompt first within each. A batch spans prefix groups: each group's prefill
        runs on its own prefix, then all rows decode together (a step costs about the same for 4
        rows as for 12, so separate groups would multiply the steps). A batch holds at most
        ``batch_size`` prompts, or with "auto" at most ``max_rows`` sequences (samples included)."""
        flat = [(g, prefix_len, i) for g, (prefix_len, members) in enumerate(self.groups(prompts))
                for i in sorted(members, key=lambda i: -len(prompts[i]))]
        fixed = isinstance(self.lm.batch_size, int)
        cap = max(1, self.lm.batch_size) if fixed else self.max_rows
        batches: list[list[tuple[int, int, int]]] = []
        rows = 0
        for entry in flat:
            r = requests[entry[2]]
            size = 1 if fixed else (r.n if r.temperature > 0 else 1)
            if batches and rows + size <= cap:
                batches[-1].append(entry)
                rows += size
            else:
                batches.append([entry])
                rows = size
        return batches

    def _batches(self, order, prompts, requests, prefix_len: int) -> list[list[int]]:
        """Prefill batches of prompt indices (longest first). A decoding step reads every weight once
        whatever the batch, so rows are cheap: an auto batch is capped by its prefill tokens and by
        ``max_rows`` sequences (samples included), not by the tokens still to generate."""
        if isinstance(self.lm.batch_size, int):
            size = max(1, self.lm.batch_size)
            return [order[i:i + size] for i in range(0, len(order), size)]
        batches: list[list[int]] = []
        rows = 0
        for i in order:
            r = requests[i]
            draws = r.n if r.temperature > 0 else 1
            width = len(prompts[batches[-1][0]]) - prefix_len if batches else 0
            if batches and rows + draws <= self.max_rows and (len(batches[-1]) + 1) * width <= self.lm.token_budget:
                batches[-1].append(i)
                rows += draws
            else:
                batches.append([i])
                rows = draws
        return batches

    def groups(self, prompts: list[list[int]]) -> list[tuple[int, list[int]]]:
        """(shared prefix length, prompt indices) groups; one group with prefix 0 when reuse is off."""
        if self.lm.kind != "causal" or not self.lm.prefix_reuse or len(prompts) < 2:
            return [(0, list(range(len(prompts))))]
        rows = sorted({tuple(p) for p in prompts})
        where: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(prompts):
            where.setdefault(tuple(p), []).append(i)
        out = []
        for g in group_rows(rows):
            members = [i for r in g.rows for i in where[rows[r]]]
            out.append((g.prefix_len, members))
        return out

    def _batch(self, requests, prompts, chunk, on_token=None):
        """Generate for one decoding batch: prefill each prefix group's part on its own prefix, then
        decode all rows together when the caches can be merged, else each part on its own."""
        import torch

        parts = []
        prefixes = {}
        for g in dict.fromkeys(e[0] for e in chunk):
            members = [e[2] for e in chunk if e[0] == g]
            P = next(e[1] for e in chunk if e[0] == g)
            prefix_cache = None
            if P:
                # Few-shot prompts: the shared exemplars run once; every part runs on views of their cache.
                _, prefix_cache = self.lm.prefix_state(tuple(prompts[members[0]][:P]))
            prefixes[g] = (P, members, prefix_cache)
        shared = self._shared_prefixes(requests, prompts, prefixes)
        for g, (P, members, prefix_cache) in prefixes.items():
            for part in self._batches(members, prompts, requests, P):
                reqs = [requests[j] for j in part]
                if shared:
                    state, logits = self._prefill_own(reqs, [prompts[j] for j in part], P, prefix_cache, g)
                    state["prefixes"] = shared
                else:
                    state, logits = self._prefill(reqs, [prompts[j] for j in part], P, prefix_cache)
                parts.append((part, reqs, state, logits))
        if self.lm.kind == "causal" and mergeable([p[2]["cache"] for p in parts]):
            # Even one part is rebuilt: the merged cache has room for the new tokens, so decoding
            # writes them in place instead of copying the whole cache at every step.
            room = max(r.max_new_tokens for r in (requests[j] for p in parts for j in p[0]))
            cache, pads = merge_caches([p[2]["cache"] for p in parts], room)
            masks = [torch.cat([p[2]["mask"].new_zeros(p[2]["mask"].shape[0], pad), p[2]["mask"]], dim=1)
                     for p, pad in zip(parts, pads, strict=True)]
            state = {"cache": cache, "mask": torch.cat(masks), "pos": torch.cat([p[2]["pos"] for p in parts])}
            if shared:
                state["groups"] = [g for p in parts for g in p[2]["groups"]]
                state["prefixes"] = shared
            logits = torch.cat([p[3] for p in parts])
            indices = [j for p in parts for j in p[0]]
            parts = [(indices, [requests[j] for j in indices], state, logits)]
        for part, reqs, state, logits in parts:
            yield from self._decode(reqs, part, state, logits, on_token)

    def _shared_prefixes(self, requests, prompts, prefixes) -> dict[int, PrefixKV | None]:
        """Each prefix group's :class:`PrefixKV` (None: no prefix) when this batch decodes on
        shared-prefix attention, else an empty dict. Rows then hold only their own tokens in the
        cache and every decoding step reads each kept prefix once, instead of a copy per row (on
        few-shot CoT prompts the prefix is most of a row's cache, and reading it most of a step)."""
        lm = self.lm
        if lm.kind != "causal" or not lm.shared_prefix_attention or not any(P for P, _, _ in prefixes.values()):
            return {}
        out: dict[int, PrefixKV | None] = {}
        for g, (P, members, cache) in prefixes.items():
            longest = max(len(prompts[i]) + requests[i].max_new_tokens for i in members)
            if P and not eligible(lm.model, cache, longest):
                return {}
            out[g] = PrefixKV(cache) if P else None
        return out

    def _prefill_own(self, reqs, prompts, prefix_len: int, prefix_cache: Any, group: int):
        """Run the prompts' suffixes on shared-prefix attention: the decoding state (a cache of the
        rows' own tokens, right-padded; the mask of the real ones) and the last logits."""
        import torch

        lm = self.lm
        P = prefix_len
        pad = lm.tokenizer.pad_token_id
        lens = [len(p) - P for p in prompts]
        width = max(lens)
        ids = torch.tensor([p[P:] + [pad] * (width - n) for p, n in zip(prompts, lens, strict=True)],
                           device=lm.device)
        # Right padding: with causal attention a real token never sees the pads after it.
        positions = torch.arange(P, P + width, device=lm.device).unsqueeze(0)
        if P:
            with using_prefix_attention(lm.model):
                out = lm.model.base_model(input_ids=ids, position_ids=positions, use_cache=True,
                                          flanlab_prefix=PrefixKV(prefix_cache))
        else:
            out = lm.model.base_model(input_ids=ids, position_ids=positions, use_cache=True)
        last = torch.tensor([n - 1 for n in lens], device=lm.device)
        hidden = out.last_hidden_state[torch.arange(len(prompts), device=lm.device), last]
        mask = torch.tensor([[1] * n + [0] * (width - n) for n in lens], device=lm.device)
        state = {"cache": output_cache(out), "mask": mask, "pos": last + P, "groups": [group] * len(prompts)}
        return state, lm._head(hidden)

    def _prefill(self, reqs, prompts, prefix_len: int = 0, prefix_cache: Any = None):
        """Run the prompts (their suffixes after a shared prefix): the decoding state and last logits."""
        import torch

        pad = self.lm.tokenizer.pad_token_id
        width = max(map(len, prompts))
        B = len(prompts)
        if self.lm.kind == "causal":
            # Left padding so every row's next token comes from the last column; with a shared
            # prefix the pads sit between prefix and suffix, masked out, positions continuing the prefix.
            P = prefix_len
            width = max(len(p) - P for p in prompts)
            ids = torch.tensor([[pad] * (width - len(p) + P) + p[P:] for p in prompts], device=self.lm.device)
            smask = torch.tensor([[0] * (width - len(p) + P) + [1] * (len(p) - P) for p in prompts],
                                 device=self.lm.device)
            pos = P + (smask.cumsum(-1) - 1).clamp(min=0)
            mask = smask
            extra: dict[str, Any] = {}
            if P:
                mask = torch.cat([torch.ones(B, P, dtype=smask.dtype, device=self.lm.device), smask], dim=1)
                extra[self.lm.cache_kwarg] = shared_cache(prefix_cache, B)
            out = self.lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1,
                             **extra)
            state: dict[str, Any] = {"cache": output_cache(out), "mask": mask, "pos": pos[:, -1]}
        else:
            ids = torch.tensor([p + [pad] * (width - len(p)) for p in prompts], device=self.lm.device)
            mask = torch.tensor([[1] * len(p) + [0] * (width - len(p)) for p in prompts], device=self.lm.device)
            enc = self.lm.model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
            start = torch.full((B, 1), self.lm.model.config.decoder_start_token_id, device=self.lm.device)
            out = self.lm.model(encoder_outputs=(enc,), attention_mask=mask, decoder_input_ids=start, use_cache=True)
            state = {"cache": output_cache(out), "mask": mask, "enc": enc}
        return state, out.logits[:, -1].float()

    def _decode(self, reqs, indices, state, logits, on_token=None):
        """Decode the prefilled rows until each stops; yields ``(request index, samples)``."""
        import torch

        B = len(reqs)
        # Greedy samples are identical: compute one and copy it.
        draws = [r.n if r.temperature > 0 else 1 for r in reqs]
        # One row per sample: the prompt's cache is indexed into rows, not recomputed.
        sel = torch.tensor([b for b in range(B) for _ in range(draws[b])], device=self.lm.device)
        self._select(state, sel)
        logits = logits.index_select(0, sel)
        owner = [b for b in range(B) for _ in range(draws[b])]
        sample_no = [k for b in range(B) for k in range(draws[b])]
        gens = [
            torch.Generator(device="cpu").manual_seed(sample_seed(reqs[b].seed, k))
            for b, k in zip(owner, sample_no, strict=True)
        ]
        tokens: list[list[int]] = [[] for _ in owner]
        active = list(range(len(owner)))
        stop_ids = self._stop_ids()
        while active:
            chosen = []
            for a, row in enumerate(active):
                r = reqs[owner[row]]
                if r.max_new_tokens == 0:
                    chosen.append(None)
                    continue
                chosen.append(self._pick(logits[a], r, gens[row]))
            still = []
            for a, row in enumerate(active):
                tok = chosen[a]
                r = reqs[owner[row]]
                if tok is None or tok in stop_ids:
                    continue
                tokens[row].append(tok)
                if on_token is not None:
                    on_token(indices[owner[row]], sample_no[row], tok)
                if len(tokens[row]) >= r.max_new_tokens or self._hit_stop(tokens[row], r.stop):
                    continue
                still.append(a)
            if not still:
                break
            keep = torch.tensor(still, device=self.lm.device)
            if len(still) < len(active):
                self._select(state, keep)
            active = [active[a] for a in still]
            nxt = torch.tensor([[chosen[a]] for a in still], device=self.lm.device)
            logits = self._step(state, nxt)
        for b, idx in enumerate(indices):
            rows = [row for row in range(len(owner)) if owner[row] == b]
            samples = [tokens[row] for row in rows]
            yield idx, samples * reqs[b].n if draws[b] == 1 else samples

    def _hit_stop(self, ids: list[int], stop: Sequence[str]) -> bool:
        if not stop:
            return False
        # Only the tail can hold a new stop sequence; decode a window wide enough for the longest.
        window = max(len(s) for s in stop) + 8
        text = self.lm.tokenizer.decode(ids[-window:], skip_special_tokens=True)
        return any(s and s in text for s in stop)

    @staticmethod
    def _pick(logits, r: GenerateRequest, gen) -> int:
        import torch

        if r.temperature <= 0:
            return int(logits.argmax().item())
        probs = torch.softmax(logits / r.temperature, dim=-1)
        if r.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            # Keep the smallest set whose mass reaches top_p (always at least the top token).
            drop = sorted_p.cumsum(-1) - sorted_p >= r.top_p
            sorted_p[drop] = 0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        return int(torch.multinomial(probs.cpu(), 1, generator=gen).item())

    def _select(self, state: dict[str, Any], idx) -> None:
        state["cache"].batch_select_indices(idx)
        state["mask"] = state["mask"].index_select(0, idx)
        if "pos" in state:
            state["pos"] = state["pos"].index_select(0, idx)
        if "enc" in state:
            state["enc"] = state["enc"].index_select(0, idx)
        if "groups" in state:
            state["groups"] = [state["groups"][i] for i in idx.tolist()]

    def _step(self, state: dict[str, Any], nxt):
        import torch

        if "prefixes" in state:
            state["mask"] = torch.cat([state["mask"], torch.ones_like(nxt)], dim=1)
            state["pos"] = state["pos"] + 1
            spans, groups = [], state["groups"]
            for i, g in enumerate(groups):
                if spans and groups[i - 1] == g:
                    spans[-1][1] = i + 1
                else:
                    spans.append([i, i + 1, state["prefixes"][g]])
            with using_prefix_attention(self.lm.model):
                out = self.lm.model(input_ids=nxt, position_ids=state["pos"][:, None], use_cache=True,
                                    flanlab_prefix=PrefixGroups([tuple(s) for s in spans], state["mask"].bool()),
                                    **{self.lm.cache_kwarg: state["cache"]})
        elif self.lm.kind == "causal":
            state["mask"] = torch.cat([state["mask"], torch.ones_like(nxt)], dim=1)
            state["pos"] = state["pos"] + 1
            out = self.lm.model(
                input_ids=nxt,
                attention_mask=state["mask"],
                position_ids=state["pos"][:, None],
                use_cache=True,
                **{self.lm.cache_kwarg: state["cache"]},
            )
        else:
            out = self.lm.model(
                encoder_outputs=(state["enc"],),
                attention_mask=state["mask"],
                decoder_input_ids=nxt,
                use_cache=True,
                **{self.lm.cache_kwarg: state["cache"]},
            )
        state["cache"] = output_cache(out)
        return out.logits[:, -1].float()
