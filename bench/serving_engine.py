"""The local engine's speed-ups on this machine, SmolLM2-135M-Instruct on the fraud prompts, side by side in one run:

1. dynamic batching — 8 concurrent clients against the engine with ``max_batch_size: 8`` vs ``1`` (one at a
   time): answers per second and mean latency;
2. lone requests, one after another: plain vs prefix caching (the system prompt's KV reused) vs prompt-lookup
   decoding vs both: mean latency, tokens/s, and for speculation the target model's forward passes per
   generated token and the acceptance rate (accepted draft tokens / proposed);
and that every variant gives the plain engine's greedy answers.

    OMP_NUM_THREADS=2 python -m bench.serving_engine [--n 48] [--home ~/.flywheel]
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time


def run_clients(eng, reqs: list, clients: int) -> tuple[list[str], list[float]]:
    """``clients`` threads take the requests in turn, each waiting for its answer: (answers, latencies)."""
    answers, lat = [None] * len(reqs), [0.0] * len(reqs)
    it, lock = iter(range(len(reqs))), threading.Lock()

    def client():
        while True:
            with lock:
                i = next(it, None)
            if i is None:
                return
            t0 = time.perf_counter()
            answers[i] = eng.generate(reqs[i]).text
            lat[i] = time.perf_counter() - t0

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers, lat


class Forwards:
    """Counts the model's forward calls (a pre-hook)."""

    def __init__(self, model):
        self.n = 0
        model.register_forward_pre_hook(self)

    def __call__(self, *_):
        self.n += 1


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=48, help="fraud prompts per variant")
    ap.add_argument("--home", default=os.environ.get("FLYWHEEL_HOME", ".flywheel"))
    ap.add_argument("--max-tokens", type=int, default=16)
    ap.add_argument("--lookup-tokens", type=int, default=4)
    a = ap.parse_args()

    import torch

    from examples.fraud import generate
    from flywheel.core.home import Home
    from flywheel.core.workload import load_workload
    from flywheel.serving.engine import DecodeOptions, GenRequest, LocalEngine
    from flywheel.training.models import resolve_base_model

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    wl = load_workload("configs/workloads/fraud.yaml")
    base = resolve_base_model(wl.sft.base_model, Home.resolve(a.home).models)
    rows = generate(a.n, seed=77, noise=0.0, prefix="bench")
    convs = [[{"role": "system", "content": wl.system_prompt}, {"role": "user", "content": r["text"]}] for r in rows]

    def req(c):
        return GenRequest(messages=c, max_tokens=a.max_tokens)

    print(f"SmolLM2-135M-Instruct, {a.n} fraud prompts, max_tokens {a.max_tokens}, {torch.get_num_threads()} threads")

    # 1. batching
    results = {}
    for size in (1, 8):
        eng = LocalEngine(base, None, "1", "cpu", max_batch_size=size, batch_wait_ms=5)
        eng.generate(req(convs[0]))  # warm-up
        t0 = time.perf_counter()
        answers, lat = run_clients(eng, [req(c) for c in convs], 8)
        wall = time.perf_counter() - t0
        b = eng._batcher
        results[size] = (answers, wall, statistics.mean(lat), b.batched_requests / max(1, b.batches))
        eng.close()
        print(
            f"8 clients, max_batch_size {size}: {a.n / wall:.2f} answers/s, mean latency {statistics.mean(lat):.2f} s, "
            f"mean batch {results[size][3]:.1f}"
        )
    same = results[1][0] == results[8][0]
    print(f"batching: throughput x{results[1][1] / results[8][1]:.2f}; answers identical: {same}")

    # 2. lone requests
    variants = {
        "plain": DecodeOptions(),
        "prefix cache": DecodeOptions(prefix_cache=True),
        f"prompt lookup ({a.lookup_tokens})": DecodeOptions(
            speculative="prompt_lookup", num_speculative_tokens=a.lookup_tokens
        ),
    }
    reference, plain_latency = None, None
    for name, opts in variants.items():
        eng = LocalEngine(base, None, "1", "cpu", max_batch_size=1, options=opts)
        calls = Forwards(eng.model)
        eng.generate(req(convs[0]))
        calls.n = 0
        texts, lat, tokens = [], [], 0
        for c in convs:
            t0 = time.perf_counter()
            g = eng.generate(req(c))
            lat.append(time.perf_counter() - t0)
            texts.append(g.text)
            tokens += g.completion_tokens
        eng.close()
        reference = reference or texts
        plain_latency = plain_latency or statistics.mean(lat)
        mean = statistics.mean(lat)
        line = (
            f"{name:32} mean latency {mean * 1000:7.1f} ms (x{plain_latency / mean:.2f}),"
            f" {tokens / sum(lat):6.1f} tokens/s, {calls.n / tokens:.2f} forwards/token"
        )
        if opts.speculative != "none":
            steps = calls.n  # each verification step is one forward of the model (the prefill too)
            accepted = tokens - steps  # tokens beyond the one a plain step gives
            line += (
                f", {accepted / steps:.2f} accepted draft tokens per step (at most {a.lookup_tokens}; "
                f"acceptance <= {accepted / (steps * a.lookup_tokens):.2f})"
            )
        print(line + f"; answers identical: {texts == reference}")
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}; date {time.strftime('%Y-%m-%d')}")


if __name__ == "__main__":
    main()
