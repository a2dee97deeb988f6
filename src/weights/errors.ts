/** Every problem found while reading or writing a weights file: corrupt, truncated, unsupported or unsafe input. */
export class WeightsError extends Error {
  override readonly name = "WeightsError";
}
