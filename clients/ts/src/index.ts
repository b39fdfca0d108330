export { dial, DroverClient, isFinal, type DialOptions } from "./client.js";
export { decodeError, DroverError, explainNoValidHost, noValidHost } from "./errors.js";
export * from "./gen/drover/v1/api_pb.js";
export * from "./gen/drover/v1/types_pb.js";
