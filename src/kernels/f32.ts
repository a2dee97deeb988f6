// JavaScript numbers are doubles. Rounding after every single +, −, ×, ÷ or √ gives exactly the IEEE f32 result
// (double has more than 2·24+2 bits, so the double rounding is innocuous), which is what wasm's f32 ops compute.
export const f = Math.fround;
