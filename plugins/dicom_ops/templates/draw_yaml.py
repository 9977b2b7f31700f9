"""The template as the DRAW server reads it: ``autosegmentation_template.yml`` in the zip."""

from __future__ import annotations

import yaml

from dicom_ops.templates.model import Template


def draw_template_yaml(template: Template) -> str:
    """The DRAW fields only (name, protocol, models); our priority and rules stay home."""
    document = {
        "name": template.name,
        "protocol": template.protocol,
        "models": {
            model_id: {
                "name": model.name,
                "config": model.config,
                "trainer_name": model.trainer_name,
                "postprocess": model.postprocess,
                "map": dict(model.map),
            }
            for model_id, model in template.models.items()
        },
    }
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
