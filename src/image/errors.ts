/** Thrown for any input image that cannot be decoded or processed: truncated, corrupt, unsupported or too large. */
export class ImageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ImageError";
  }
}
