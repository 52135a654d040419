# The project's image: the balsam CLI, the launcher, the examples and the
# tests, built. Open MPI is installed for the launcher's mpi job mode, Python 3
# for the Python client (clients/python) and searches written with it; the
# node image has gcc, which builds native/balsam-spawn.c (the launcher's job starter).
FROM node:20-bookworm

RUN apt-get update \
 && apt-get install -y --no-install-recommends openmpi-bin python3 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# Dependencies first: this layer is rebuilt only when the lockfile changes.
COPY package.json package-lock.json ./
# npm install, not npm ci: see .ci/run (npm ci refuses this lock under npm 11).
RUN npm install --no-audit --no-fund --loglevel=error

COPY tsconfig.json eslint.config.mjs ./
COPY bin ./bin
COPY libs ./libs
COPY services ./services
COPY cli ./cli
COPY examples ./examples
COPY clients ./clients
COPY bench ./bench
COPY test ./test
COPY scripts ./scripts
COPY native ./native
RUN npm run build \
 && ln -s /app/bin/balsam.js /usr/local/bin/balsam
ENV PYTHONPATH=/app/clients/python

CMD ["balsam", "--help"]
