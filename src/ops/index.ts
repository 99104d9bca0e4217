/** The typed op API: `import { ops } from 'qwenlong'`. Shapes and dtypes are checked here, once. */
export { add, scale, type AddOptions, type ScaleOptions } from './add.js';
export { matmul, type MatmulOptions } from './matmul.js';
