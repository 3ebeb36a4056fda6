"""Recipe sections, one file per section; ``distill.recipe`` loads a recipe and re-exports them all.

Every section derives from ``Section`` (``base.py``): unknown keys are rejected, and a field that changes no
produced artifact is declared ``runtime(...)`` next to its definition so the run fingerprint leaves it out.
"""

from distill.config.base import Section, runtime_free
from distill.config.data import DataConfig, Sampling
from distill.config.eval import EvalConfig, EvalModel, EvalVLLMOptions
from distill.config.filter import (
    TRACE_FORMATS,
    BenchmarkSource,
    DecontaminationConfig,
    DedupConfig,
    FilterConfig,
)
from distill.config.grpo import GRPO_TEACHER, REWARD_NAMES, GRPOTeacherConfig
from distill.config.judge import JUDGE_USES, FilterJudgeConfig, JudgeConfig, JudgedBenchmark, JudgePrices
from distill.config.release import GateConfig, ReleaseConfig
from distill.config.report import Prices, ReportConfig
from distill.config.student import LAUNCH_STRATEGIES, LaunchConfig, LoraConfig, StudentConfig
from distill.config.teacher import OpenAIOptions, TeacherConfig, VLLMOptions

__all__ = [
    "GRPO_TEACHER",
    "JUDGE_USES",
    "LAUNCH_STRATEGIES",
    "REWARD_NAMES",
    "TRACE_FORMATS",
    "BenchmarkSource",
    "DataConfig",
    "DecontaminationConfig",
    "DedupConfig",
    "EvalConfig",
    "EvalModel",
    "EvalVLLMOptions",
    "FilterConfig",
    "FilterJudgeConfig",
    "GRPOTeacherConfig",
    "GateConfig",
    "JudgeConfig",
    "JudgedBenchmark",
    "JudgePrices",
    "LaunchConfig",
    "LoraConfig",
    "OpenAIOptions",
    "Prices",
    "ReleaseConfig",
    "ReportConfig",
    "Sampling",
    "Section",
    "StudentConfig",
    "TeacherConfig",
    "VLLMOptions",
    "runtime_free",
]
