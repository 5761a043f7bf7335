/** The API version the OpenAPI document reports; follows the packrun release. */
export const apiVersion = "0.1.0";
