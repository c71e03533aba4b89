// @kubernetes/client-node 1.x is ESM-only. Node >= 20.19 require()s ES modules natively, but jest's own
// module registry cannot on Node 20, so tests load it through Node's real require instead.
module.exports = require('node:module').createRequire(__filename)('@kubernetes/client-node');
