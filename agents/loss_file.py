"""Loss files: either kind of loss loads by the ``format`` of its JSON file.

* ``mld-agent-losses/1``: :class:`agents.loss.AgentLosses`, the paper's losses (one per species over
  the weight-function invariants of eq. 4.1, minimum image or a model cutoff; the own form);
* ``mld-descriptor-loss/1``: :class:`agents.descriptor_loss.DescriptorLoss`, losses over a descriptor
  set that carries its own cutoffs (cut radial and many-body invariants), own or shared form.
"""

from __future__ import annotations

from agents.descriptor_loss import FORMAT as DESCRIPTOR_FORMAT
from agents.descriptor_loss import DescriptorLoss
from agents.loss import FORMAT as AGENT_FORMAT
from agents.loss import AgentLosses
from agents.json_file import read_json


def losses_from_dict(data: dict, where: str = "loss") -> AgentLosses | DescriptorLoss:
    """Either kind of loss from its plain-data form, by its ``format``; errors name ``where``."""
    kinds = {AGENT_FORMAT: AgentLosses, DESCRIPTOR_FORMAT: DescriptorLoss}
    kind = kinds.get(data.get("format"))
    if kind is None:
        raise ValueError(f"{where}: unknown format {data.get('format')!r}, expected one of {list(kinds)}")
    return kind.from_dict(data, where)


def load_losses(path) -> AgentLosses | DescriptorLoss:
    """Either kind of loss from its JSON file, by the file's ``format``."""
    return losses_from_dict(read_json(path), f"loss file {path}")
