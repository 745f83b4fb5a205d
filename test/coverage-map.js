// Coverage is measured on src/ (the TypeScript the tests import); every test maps to all of src.
export default () => ['src/**'];
