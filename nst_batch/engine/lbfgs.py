"""L-BFGS for many independent problems at once, without a read-back to the host.

Each row of a batch (B, n) is its own problem with its own curvature history, step and
start, as `torch.optim.LBFGS(lr=1, max_iter=1, history_size=m, line_search_fn=None)` takes one
problem alone: the same rules, on the device.

- The first step is -g scaled by min(1, 1 / ||g||_1); later steps are -H g with unit length.
- A pair (s, y) joins the history only where s.y > 1e-10. The initial inverse Hessian is
  gamma I with gamma = s.y / y.y of the newest pair.
- A picture whose gradient is flat (max |g| <= 1e-7) takes no step and keeps its state; one
  whose direction does not descend (g.d > -1e-9) keeps its new state but does not move.

Torch's two-loop recursion is a Python loop over the history, with a host read-back for each
test. Here -H g is the compact form of Byrd, Nocedal and Schnabel (1994), Nocedal and Wright
eq. 7.24:

    H g = gamma g + S p - gamma Y u,    u = R^-1 S^T g,    p = R^-T ((D + gamma Y^T Y) u - gamma Y^T g)

Here S and Y hold the pairs (oldest first), R is the upper triangle of S^T Y and D its diagonal.
That is a few batched products over the history and an m x m triangular solve (in float64).
S^T Y and Y^T Y are kept up to date one row and column per accepted pair. Rows of pictures that
are done (`active` false) do not change.
"""

from __future__ import annotations

import torch

__all__ = ["BatchLBFGS"]

_CURVATURE = 1e-10  # torch's: a pair joins the history only where s.y exceeds it


class BatchLBFGS:
    def __init__(self, batch: int, size: int, *, device: torch.device, dtype: torch.dtype = torch.float32,
                 history: int = 50, lr: float = 1.0, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9) -> None:
        m = history
        self.m, self.lr = m, lr
        self.tolerance_grad, self.tolerance_change = tolerance_grad, tolerance_change
        self.S = torch.zeros(batch, m, size, device=device, dtype=dtype)  # steps s_k, in slot order
        self.Y = torch.zeros(batch, m, size, device=device, dtype=dtype)  # gradient changes y_k
        self.SY = torch.zeros(batch, m, m, device=device, dtype=torch.float64)  # s_i . y_j, slot order
        self.YY = torch.zeros(batch, m, m, device=device, dtype=torch.float64)  # y_i . y_j
        self.ptr = torch.zeros(batch, dtype=torch.long, device=device)  # the slot the next pair goes to
        self.count = torch.zeros(batch, dtype=torch.long, device=device)  # pairs held, at most m
        self.gamma = torch.ones(batch, dtype=torch.float64, device=device)
        self.d = torch.zeros(batch, size, device=device, dtype=dtype)  # the last direction and its length
        self.t = torch.zeros(batch, device=device, dtype=dtype)
        self.prev_g = torch.zeros(batch, size, device=device, dtype=dtype)
        self.started = torch.zeros(batch, dtype=torch.bool, device=device)
        self._rows = torch.arange(batch, device=device)
        self._ages = torch.arange(m, device=device)
        self._eye = torch.eye(m, dtype=torch.float64, device=device).expand(batch, m, m)

    @torch.no_grad()
    def step(self, g: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
        """The move (B, n) to add to the points whose gradients are `g` (B, n); zero for rows not `active`."""
        live = active & (g.abs().amax(1) > self.tolerance_grad)  # torch returns at once on a flat gradient
        first = live & ~self.started
        later = live & self.started
        y = g - self.prev_g
        s = self.d * self.t[:, None]
        ys = (y * s).sum(1)
        accept = later & (ys > _CURVATURE)
        sg, yg = self._remember(s, y, ys, accept, g)
        direction = torch.where(first[:, None], -g, -self._inverse_hessian_times(g, sg, yg))
        length = torch.where(first, (1.0 / g.abs().sum(1)).clamp(max=1.0) * self.lr,
                             torch.full_like(self.t, self.lr))
        self.d = torch.where(live[:, None], direction, self.d)
        self.t = torch.where(live, length, self.t)
        self.prev_g = torch.where(live[:, None], g, self.prev_g)
        self.started = self.started | live
        descends = (g * self.d).sum(1) <= -self.tolerance_change
        return self.d * (self.t * (live & descends))[:, None]

    def _remember(self, s: torch.Tensor, y: torch.Tensor, ys: torch.Tensor, accept: torch.Tensor,
                  g: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The pair (s, y) into each accepting row's next slot (the oldest, once full), and S^T Y, Y^T Y with it;
        gives S g and Y g (B, m) over the history as it is now. One pass over S and one over Y: every product
        with them is taken at once (memory, not arithmetic, bounds these on a CPU)."""
        rows, slot = self._rows, self.ptr
        keep = accept[:, None]
        self.S[rows, slot] = torch.where(keep, s, self.S[rows, slot])
        self.Y[rows, slot] = torch.where(keep, y, self.Y[rows, slot])
        y_new = self.Y[rows, slot]  # (B, n): the new y where accepted, else the slot's own
        s_new = self.S[rows, slot]
        # The vectors as rows against the history transposed: (B, k, n) x (B, n, m). The other way round,
        # (B, m, n) x (B, n, k) with k of 2 or 3, took twice the time on a CPU (and a strided stack).
        on_s = _dots(self.S, y_new, g)  # (B, m, 2): s_k . y_new, s_k . g
        on_y = _dots(self.Y, s_new, y_new, g)  # (B, m, 3): y_k . s_new, y_k . y_new, y_k . g
        row, col, yy = on_y[..., 0], on_s[..., 0], on_y[..., 1]
        self.SY[rows, slot] = torch.where(keep, row, self.SY[rows, slot])
        self.SY[rows, :, slot] = torch.where(keep, col, self.SY[rows, :, slot])
        self.YY[rows, slot] = torch.where(keep, yy, self.YY[rows, slot])
        self.YY[rows, :, slot] = torch.where(keep, yy, self.YY[rows, :, slot])
        newest = self.YY[rows, slot, slot]
        self.gamma = torch.where(accept, ys.double() / newest.clamp_min(1e-300), self.gamma)
        self.ptr = torch.where(accept, (slot + 1) % self.m, slot)
        self.count = torch.where(accept, (self.count + 1).clamp(max=self.m), self.count)
        return on_s[..., 1], on_y[..., 2]

    def _inverse_hessian_times(self, g: torch.Tensor, sg: torch.Tensor, yg: torch.Tensor) -> torch.Tensor:
        """H g (B, n) by the compact form, over each row's pairs (none yet: gamma g); `sg`, `yg`: S g, Y g."""
        m = self.m
        order = (self.ptr[:, None] + self._ages) % m  # (B, m): slots oldest first (empty slots come first)
        valid = self._ages[None, :] >= (m - self.count)[:, None]  # (B, m), in that order
        both = valid[:, :, None] & valid[:, None, :]
        sy = _permuted(self.SY, order)
        yy = _permuted(self.YY, order)
        r = torch.where(both, torch.triu(sy), self._eye)  # empty slots: an identity row and column
        dg = torch.where(valid, torch.diagonal(sy, dim1=1, dim2=2), 0.0)
        gamma = self.gamma[:, None]
        sg = torch.where(valid, sg.gather(1, order), 0.0)  # (B, m), oldest first
        yg = torch.where(valid, yg.gather(1, order), 0.0)
        u = torch.linalg.solve_triangular(r, sg[:, :, None], upper=True)  # (B, m, 1)
        inner = dg[:, :, None] * u + gamma[:, :, None] * torch.bmm(torch.where(both, yy, 0.0), u)
        p = torch.linalg.solve_triangular(r.transpose(1, 2), inner - (gamma * yg)[:, :, None], upper=False)
        # back to slot order, then H g = gamma g + S^T p - gamma Y^T u
        p_slot = torch.zeros_like(sg).scatter(1, order, p.squeeze(-1))
        u_slot = torch.zeros_like(sg).scatter(1, order, u.squeeze(-1))
        dtype = g.dtype
        return (gamma.to(dtype) * g + torch.bmm(p_slot.to(dtype)[:, None, :], self.S).squeeze(1)
                - torch.bmm((gamma * u_slot).to(dtype)[:, None, :], self.Y).squeeze(1))


def _dots(history: torch.Tensor, *vectors: torch.Tensor) -> torch.Tensor:
    """(B, m, k) float64: each pair of `history` (B, m, n) dotted with each of the k `vectors` (B, n)."""
    return torch.bmm(torch.stack(vectors, 1), history.transpose(1, 2)).transpose(1, 2).double()


def _permuted(matrix: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    """(B, m, m) with rows and columns taken in `order` (B, m)."""
    b, m, _ = matrix.shape
    rows = matrix.gather(1, order[:, :, None].expand(b, m, m))
    return rows.gather(2, order[:, None, :].expand(b, m, m))
