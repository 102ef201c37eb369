// Loads the compiled addon (built by `node-gyp rebuild` when npm installs this package).
module.exports = require('./build/Release/caswarm_tree.node')
