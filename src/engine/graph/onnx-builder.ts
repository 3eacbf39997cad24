import { onnx } from 'onnx-proto';

/** Opset 17: every op used here has had a stable signature since then on the CPU, CUDA and WebGPU providers. */
export const OPSET = 17;
const IR_VERSION = 8;

export type Dim = number | string;
export type ElemType = 'float' | 'int64';
/** Integer attributes only: float hyper-parameters enter as constants, so an int/float mix-up cannot happen. */
type AttrValue = number | number[] | string;

const ELEM: Record<ElemType, onnx.TensorProto.DataType> = {
  float: onnx.TensorProto.DataType.FLOAT,
  int64: onnx.TensorProto.DataType.INT64,
};

/**
 * Builds an ONNX graph node by node and serialises it with the ONNX protobuf schema.
 * Values are referred to by name; `op` returns the names of a node's outputs.
 */
export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inputs: onnx.IValueInfoProto[] = [];
  private readonly outputs: onnx.IValueInfoProto[] = [];
  private readonly initializers: onnx.ITensorProto[] = [];
  private counter = 0;

  constructor(private readonly name: string) {}

  /** Declaring an input again returns it: a helper that reads a named input may run once per unrolled step. */
  input(name: string, type: ElemType, dims: Dim[]): string {
    if (this.inputs.some((i) => i.name === name)) return name;
    this.inputs.push(valueInfo(name, type, dims));
    return name;
  }

  /** Marks `value` as a graph output under `name` (an Identity keeps internal names free to change). */
  output(value: string, name: string, type: ElemType, dims: Dim[]): void {
    this.op('Identity', [value], {}, [name]);
    this.outputs.push(valueInfo(name, type, dims));
  }

  op(type: string, inputs: string[], attrs: Record<string, AttrValue> = {}, outputs?: string[]): string {
    return this.opN(type, inputs, 1, attrs, outputs)[0]!;
  }

  opN(type: string, inputs: string[], count: number, attrs: Record<string, AttrValue> = {}, outputs?: string[]): string[] {
    const id = this.counter++;
    const names = outputs ?? Array.from({ length: count }, (_, k) => `${type.toLowerCase()}_${id}_${k}`);
    this.nodes.push({
      opType: type,
      name: `${type}_${id}`,
      input: inputs,
      output: names,
      attribute: Object.entries(attrs).map(([key, value]) => attribute(key, value)),
    });
    return names;
  }

  constInt64(values: number[]): string {
    const name = `const_${this.counter++}`;
    this.initializers.push({ name, dataType: ELEM.int64, dims: [values.length], int64Data: values });
    return name;
  }

  constInt64Scalar(value: number): string {
    const name = `const_${this.counter++}`;
    this.initializers.push({ name, dataType: ELEM.int64, dims: [], int64Data: [value] });
    return name;
  }

  constFloat(value: number): string {
    const name = `const_${this.counter++}`;
    this.initializers.push({ name, dataType: ELEM.float, dims: [], floatData: [value] });
    return name;
  }

  build(): Uint8Array {
    const model: onnx.IModelProto = {
      irVersion: IR_VERSION,
      producerName: 'prunelens',
      opsetImport: [{ domain: '', version: OPSET }],
      graph: {
        name: this.name,
        node: this.nodes,
        input: this.inputs,
        output: this.outputs,
        initializer: this.initializers,
      },
    };
    return onnx.ModelProto.encode(model).finish();
  }
}

function valueInfo(name: string, type: ElemType, dims: Dim[]): onnx.IValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: ELEM[type],
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  };
}

function attribute(name: string, value: AttrValue): onnx.IAttributeProto {
  if (typeof value === 'string') return { name, type: onnx.AttributeProto.AttributeType.STRING, s: Buffer.from(value) };
  if (Array.isArray(value)) return { name, type: onnx.AttributeProto.AttributeType.INTS, ints: value };
  if (!Number.isInteger(value)) throw new Error(`attribute ${name}: ${value} is not an integer`);
  return { name, type: onnx.AttributeProto.AttributeType.INT, i: value };
}
