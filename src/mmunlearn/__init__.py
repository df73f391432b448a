"""mmunlearn: the logic behind the MLLMU-Bench multimodal unlearning pipeline.

Sub-packages: ``data`` (MLLMU-Bench schema, readers, synthetic twin, splits), ``models`` (model registry),
``train`` (fine-tuning and the unlearning-loss registry), ``eval`` (declared evaluation tasks), ``report``
(aggregation). Workflow scripts under ``workflow_scripts/`` are thin entry points into these.
"""

__version__ = "0.1.0"
