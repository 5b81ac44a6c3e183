"""Angular-margin classification heads: ArcFace and sub-cluster AdaCos, on L2-normalised embeddings.

Both score classes by the cosine between the embedding and learned class centres, which pulls the
embeddings of a class onto a tight cone: at test time, the distance to normal training embeddings is the
anomaly score. ``loss(emb, y_a, y_b, lam)`` is the mixup loss ``lam * L(y_a) + (1 - lam) * L(y_b)``
(``y_b = y_a``, ``lam = 1`` without mixup).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class ArcFace(nn.Module):
    """Additive angular margin (Deng et al. 2019): logit of the true class is s * cos(theta + m)."""

    def __init__(self, embedding_dim: int, n_classes: int, scale: float = 30.0, margin: float = 0.5) -> None:
        super().__init__()
        self.scale = scale
        self.margin = margin
        self.centres = nn.Parameter(torch.empty(n_classes, embedding_dim))
        nn.init.xavier_uniform_(self.centres)

    def cosines(self, emb: torch.Tensor) -> torch.Tensor:
        return F.linear(F.normalize(emb), F.normalize(self.centres))

    def logits(self, emb: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        cos = self.cosines(emb).clamp(-1 + 1e-7, 1 - 1e-7)
        theta = torch.acos(cos.gather(1, labels[:, None]))
        with_margin = torch.cos((theta + self.margin).clamp(max=math.pi))
        return self.scale * cos.scatter(1, labels[:, None], with_margin)

    def loss(self, emb: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
        loss = F.cross_entropy(self.logits(emb, y_a), y_a)
        if lam < 1:
            loss = lam * loss + (1 - lam) * F.cross_entropy(self.logits(emb, y_b), y_b)
        return loss


class SubClusterAdaCos(nn.Module):
    """Sub-cluster AdaCos (Wilkinghoff 2021): several centres per class, an adaptive scale, no margin.

    A class's probability is the summed softmax probability of its sub-clusters, so one class may hold
    several modes (operating conditions). The scale follows AdaCos: during training it is reset each
    batch to log(B_avg) / cos(min(pi/4, theta_med)), where B_avg is the batch's mean summed exp-logit
    of the other classes' sub-clusters and theta_med the median angle to the true class's nearest centre.
    """

    scale: torch.Tensor

    def __init__(self, embedding_dim: int, n_classes: int, n_subclusters: int = 16) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.n_subclusters = n_subclusters
        self.centres = nn.Parameter(torch.empty(n_classes * n_subclusters, embedding_dim))
        nn.init.xavier_uniform_(self.centres)
        initial = math.sqrt(2) * math.log(max(n_classes * n_subclusters - 1, 2))
        self.register_buffer("scale", torch.tensor(initial))

    def cosines(self, emb: torch.Tensor) -> torch.Tensor:
        """[B, n_classes, n_subclusters] cosines to every centre."""
        cos = F.linear(F.normalize(emb), F.normalize(self.centres))
        return cos.view(len(emb), self.n_classes, self.n_subclusters)

    def loss(self, emb: torch.Tensor, y_a: torch.Tensor, y_b: torch.Tensor, lam: float) -> torch.Tensor:
        target = (
            lam * F.one_hot(y_a, self.n_classes).float() + (1 - lam) * F.one_hot(y_b, self.n_classes).float()
        )
        cos = self.cosines(emb)
        if self.training:
            self._update_scale(cos.detach(), target)
        logits = self.scale * cos
        class_log_prob = torch.logsumexp(logits, dim=2) - torch.logsumexp(logits.flatten(1), dim=1)[:, None]
        return -(target * class_log_prob).sum(dim=1).mean()

    @torch.no_grad()
    def _update_scale(self, cos: torch.Tensor, target: torch.Tensor) -> None:
        others = torch.exp(self.scale * cos).sum(dim=2) * (1 - target)  # [B, n_classes]
        b_avg = others.sum(dim=1).mean().clamp(min=1e-12)
        true_class = target.argmax(dim=1)
        nearest = cos.max(dim=2).values.gather(1, true_class[:, None]).clamp(-1 + 1e-7, 1 - 1e-7)
        theta_med = torch.acos(nearest).median()
        scale = torch.log(b_avg) / torch.cos(torch.clamp(theta_med, max=math.pi / 4))
        self.scale.copy_(scale.clamp(min=1.0))  # B_avg < e (one class left by the target) must not flip it
