/**
 * Megatron rank order, tensor fastest: rank = pipeline·(data·tensor) + data_rank·tensor + tensor_rank.
 * Consecutive ranks share a tensor group (kept inside a node); pipeline stages span nodes.
 */
export interface GridSize {
  data: number;
  tensor: number;
  pipeline: number;
}

export interface GridCoords {
  data: number;
  tensor: number;
  pipeline: number;
}

export function coordsOf(rank: number, size: GridSize): GridCoords {
  return {
    tensor: rank % size.tensor,
    data: Math.floor(rank / size.tensor) % size.data,
    pipeline: Math.floor(rank / (size.tensor * size.data)),
  };
}

export function rankOf(c: GridCoords, size: GridSize): number {
  return c.pipeline * size.data * size.tensor + c.data * size.tensor + c.tensor;
}
