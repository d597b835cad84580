"""Generation policies: config rules that set or clamp sampling, length, thinking and effort.

Rules match a request on its tenant, model, route, metadata, headers, task (detected)
and turn number; what they set is fitted to what the model and the API version accept,
so a policy never turns a valid request into a 400 (``policies.apply``).
"""

from claude_proxy.policies.apply import Target, apply_policies
from claude_proxy.policies.capabilities import CAPABILITIES, EFFORTS, ModelCaps, capabilities
from claude_proxy.policies.match import RequestFacts, matching
from claude_proxy.policies.report import Applied, PolicyReport, Skipped
from claude_proxy.policies.settings import PARAMETERS, PolicyRoute, PolicyRule, check_policies
from claude_proxy.policies.task import TASKS, Task, detect_task, user_turns

__all__ = [
    "CAPABILITIES",
    "EFFORTS",
    "PARAMETERS",
    "TASKS",
    "Applied",
    "ModelCaps",
    "PolicyReport",
    "PolicyRoute",
    "PolicyRule",
    "RequestFacts",
    "Skipped",
    "Target",
    "Task",
    "apply_policies",
    "capabilities",
    "check_policies",
    "detect_task",
    "matching",
    "user_turns",
]
