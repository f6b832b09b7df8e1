"""How the training loop cuts a model's inputs into batches, said by the model's registry entry so that the
loop names no input.

Texts of similar length are batched together and each batch is cut to its longest text: outputs do not depend
on the padding beyond it, and less padding is computed.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import torch

Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Batching:
    # each row's real length, from the inputs; None: the rows have no length (pooled features), batch as
    # they come
    lengths: Optional[Callable[[Tensors], torch.Tensor]] = None
    padded: tuple[str, ...] = ()  # the inputs whose second dimension is the length, cut per batch

    def row_lengths(self, data: Tensors) -> Optional[torch.Tensor]:
        return self.lengths(data) if self.lengths is not None else None

    def trim(self, batch: Tensors, lengths: Optional[torch.Tensor]) -> Tensors:
        """Cut the padded inputs beyond the batch's longest row."""
        if lengths is None:
            return batch
        width = max(1, int(lengths.max()))
        for key in self.padded:
            if key in batch:
                batch[key] = batch[key][:, :width]
        return batch


UNBATCHED = Batching()
