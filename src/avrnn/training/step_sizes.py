"""How far each phase moves the parameters that several phases share: PS (tau) is updated by the
reconstruction and the adversarial phase, TR (omega) by the adversarial phase (and by the
reconstruction phase under ablation=hybrid). RMSProp and Adam step every coordinate by about the
learning rate whatever the gradient's size, so a nearly blind critic's noise can move PS further
than the likelihood does; these norms, logged per phase, show it in any run
(train/update_norm/<phase>/<group>, train/grad_norm/<phase>/<group>: L2 over the group)."""

from __future__ import annotations

import torch


class StepSizes:
    def __init__(self, groups: dict[str, list[torch.nn.Parameter]]):
        self.groups = groups

    def snapshot(self, optimizer: torch.optim.Optimizer) -> dict[str, list[tuple[torch.nn.Parameter, torch.Tensor]]]:
        """The watched groups this optimizer steps, with their values before the step."""
        stepped = {id(p) for group in optimizer.param_groups for p in group["params"]}
        return {name: [(p, p.detach().clone()) for p in params] for name, params in self.groups.items()
                if params and all(id(p) in stepped for p in params)}

    @staticmethod
    def norms(phase: str, snapshot: dict) -> dict[str, torch.Tensor]:
        """L2 norms of the update just applied and of the gradient it used, per watched group."""
        norms = {}
        for name, pairs in snapshot.items():
            norms[f"update_norm/{phase}/{name}"] = torch.stack(
                [(p.detach() - before).pow(2).sum() for p, before in pairs]).sum().sqrt()
            grads = [p.grad.detach().pow(2).sum() for p, _ in pairs if p.grad is not None]
            if grads:
                norms[f"grad_norm/{phase}/{name}"] = torch.stack(grads).sum().sqrt()
        return norms
