# The edge-case matrix of `just compat` (issue #21): each `### NAME` starts a Dockerfile built by cairn and by
# BuildKit (dockerd 20.10's built-in frontend) from the context testdata/compat/ctx (prepared by compat/run.sh:
# modes, hard links, an empty directory and archives git cannot hold). compat/run.sh expands:
#   - every case starts with `ARG BASE_IMAGE`, and with `FROM ${BASE_IMAGE}` unless it has a FROM line;
#   - a line `@SRC` is a stage `src` holding /out/d (4321:4321 0700: a, b and inner/c hard-linked, inner/x,
#     a relative symlink rel -> a), /out/ld -> /out/d, /out/f.txt (0600), /out/e (empty), then `FROM ${BASE_IMAGE}`;
#   - `@BASE@` is the base image reference (for COPY --from=IMAGE).
# A `#### buildkit` section is what BuildKit 20.10 builds instead when the case uses syntax it lacks
# (--link, --parents, --exclude): the equivalent the newer BuildKit documents, written out by hand. Such a
# case checks cairn against our reading of the documentation, not against BuildKit itself: keep them few.

### copy-file-new-dest
COPY f.txt /f-copy

### copy-file-into-new-dir
COPY f.txt /newdir/

### copy-file-into-existing-dir
COPY f.txt /etc/

### copy-file-existing-dir-no-slash
COPY f.txt /etc

### copy-file-nested-new-parents
COPY f.txt /p1/p2/p3/f

### copy-exec-file-keeps-mode
COPY script.sh /usr/local/bin/

### copy-dir-new-dest
COPY dir /newdir

### copy-dir-new-dest-slash
COPY dir /newdir/

### copy-dir-existing-dest
RUN mkdir /exist && chmod 751 /exist && chown 55:55 /exist
COPY dir /exist/

### copy-dir-existing-dest-no-slash
RUN mkdir /exist && chmod 700 /exist
COPY dir /exist

### copy-dir-into-workdir-dot
WORKDIR /app
COPY dir ./

### copy-dir-into-workdir-existing-0751
RUN mkdir /app && chmod 751 /app
WORKDIR /app
COPY dir .

### copy-dir-private-mode-source
COPY dir /d/

### copy-dir-contents-trailing-dot
COPY dir/. /dotted/

### copy-dir-nested-new-parents
COPY dir /x/y/z/

### copy-empty-dir-new-dest
COPY empty /made-empty

### copy-empty-dir-existing-dest
RUN mkdir -p /ex && chown 7:7 /ex
COPY empty /ex/

### copy-whole-context
COPY . /ctx/

### copy-whole-context-to-root
COPY . /

### copy-multiple-files
COPY f.txt g.txt /multi/

### copy-file-and-dir
COPY f.txt dir /mixed/

### copy-two-dirs-merge
COPY dir dir2 /merged/

### copy-wildcard-files
COPY *.txt /w/

### copy-wildcard-dirs
COPY di* /wd/

### copy-wildcard-question
COPY ?.txt /q/

### copy-wildcard-class
COPY [fg].txt /cls/

### copy-wildcard-optional-missing
COPY f.txt nothing-here* /opt/

### copy-wildcard-nested
# Not `*/package.json`: BuildKit 20.10's context sender fails when `*` matches a file (lstat f.txt/package.json).
COPY [ap]*/package.json /pk/

### copy-file-with-space
COPY ["sp ace.txt", "/sp ace/"]

### copy-symlink-top-followed
COPY link-to-f /via-link

### copy-symlink-dir-top-followed
COPY dirlink /via-dirlink/

### copy-symlink-inside-dir-kept
COPY dir2 /d2/

### copy-dest-through-symlink
RUN mkdir /real && ln -s /real /lnk
COPY f.txt /lnk/

### copy-dir-dest-through-symlink
RUN mkdir /real && chown 9:9 /real && chmod 700 /real && ln -s /real /lnk
COPY dir /lnk/

### copy-hardlinks-from-context
COPY hl /hl/

### copy-hardlink-single-from-context
COPY hl/two /two

### copy-hardlinks-separate-sources
COPY hl/one hl/two /sep/

### copy-dockerignore-respected
COPY . /ig/

### copy-overwrite-existing-file
RUN echo old > /etc/motd
COPY f.txt /etc/motd

### chown-id-file
COPY --chown=1234:1234 f.txt /c/

### chown-id-only-uid
COPY --chown=1234 f.txt /c/

### chown-name-file
COPY --chown=node:node f.txt /home/node/

### chown-name-user-only
COPY --chown=node f.txt /cn/

### chown-dir-new-dest
COPY --chown=1234:1234 dir /cd

### chown-dir-existing-dest
RUN mkdir /app && chmod 751 /app
WORKDIR /app
COPY --chown=1234:1234 dir ./

### chown-new-nested-parents
COPY --chown=1234:1234 f.txt /q3/q4/name

### chown-created-user
RUN addgroup -g 1001 -S nodejs && adduser -S nextjs -u 1001 -G nodejs
COPY --chown=nextjs:nodejs dir /srv/

### chmod-octal-file
COPY --chmod=600 f.txt /m/

### chmod-octal-exec
COPY --chmod=755 f.txt /m/run

### chmod-octal-dir
COPY --chmod=640 dir /md/

### chmod-and-chown
COPY --chown=1234:1234 --chmod=700 dir /cm/

### chmod-new-parents
COPY --chmod=640 f.txt /r1/r2/

### from-stage-dir-new-dest
@SRC
COPY --from=src /out/d /new

### from-stage-dir-new-dest-slash
@SRC
COPY --from=src /out/d /new/

### from-stage-dir-existing-dest
@SRC
RUN mkdir /plain
COPY --from=src /out/d /plain/

### from-stage-dir-workdir-chown
@SRC
RUN mkdir /app && chmod 751 /app
WORKDIR /app
COPY --from=src --chown=1234:1234 /out/d ./

### from-stage-dir-chmod
@SRC
COPY --from=src --chmod=600 /out/d /new4

### from-stage-hardlinks-kept
@SRC
COPY --from=src /out/d /hl/

### from-stage-hardlinks-subdir-only
@SRC
COPY --from=src /out/d/inner /inner/

### from-stage-hardlinks-separate-sources
@SRC
COPY --from=src /out/d/a /out/d/b /hl/

### from-stage-hardlinks-wildcard
@SRC
COPY --from=src /out/d/* /hlw/

### from-stage-symlink-dir-top
@SRC
COPY --from=src /out/ld /viasym

### from-stage-file-private
@SRC
COPY --from=src /out/f.txt /f

### from-stage-empty-dir
@SRC
COPY --from=src /out/e /e2

### from-stage-whole-root-subset
@SRC
COPY --from=src /out /all-out/

### from-stage-existing-dest-through-symlink
@SRC
RUN mkdir /exist && chown 9:9 /exist && chmod 700 /exist && ln -s /exist /lnk
COPY --from=src /out/d/ /lnk/

### from-stage-after-rm-whiteout
FROM ${BASE_IMAGE} AS src
RUN mkdir -p /out/keep /out/gone && echo k > /out/keep/k && echo g > /out/gone/g
RUN rm -rf /out/gone && echo k2 > /out/keep/k2
FROM ${BASE_IMAGE}
COPY --from=src /out /out/

### from-stage-opaque-dir
FROM ${BASE_IMAGE} AS src
RUN mkdir -p /out/o && echo 1 > /out/o/one && echo 2 > /out/o/two
RUN rm -rf /out/o && mkdir /out/o && echo 3 > /out/o/three
FROM ${BASE_IMAGE}
COPY --from=src /out/o /o/

### from-image-file
COPY --from=@BASE@ /etc/alpine-release /alpine-release

### from-image-dir
COPY --from=@BASE@ /etc/apk /apk-copy/

### from-image-dir-existing-dest
RUN mkdir -p /srv && chmod 700 /srv
COPY --from=@BASE@ /etc/apk /srv

### run-rm-base-file-whiteout
RUN rm /etc/motd

### run-rm-base-dir-whiteout
RUN rm -rf /etc/apk/protected_paths.d

### run-replace-dir-opaque
RUN rm -rf /etc/apk && mkdir /etc/apk && echo x > /etc/apk/world

### run-rm-copied-then-recopy
COPY dir /d/
RUN rm -rf /d/sub
COPY dir2 /d/

### run-hardlink-then-copy-from
FROM ${BASE_IMAGE} AS src
RUN mkdir -p /app/node_modules/esbuild/bin /app/node_modules/@esbuild/linux-x64/bin && echo bin > /app/node_modules/@esbuild/linux-x64/bin/esbuild && ln /app/node_modules/@esbuild/linux-x64/bin/esbuild /app/node_modules/esbuild/bin/esbuild
FROM ${BASE_IMAGE}
WORKDIR /app
COPY --from=src /app/node_modules ./node_modules

### run-chmod-chown-in-run
COPY dir /d/
RUN chown -R 1234:1234 /d && chmod 700 /d/sub

### workdir-new
WORKDIR /wd/a/b

### workdir-as-user
USER node
WORKDIR /wu/x

### workdir-existing
WORKDIR /etc

### workdir-relative-chain
WORKDIR /base
WORKDIR rel/more
COPY f.txt .

### user-and-copy
USER node
COPY f.txt /uf/

### user-numeric
USER 1234:1234
WORKDIR /un
COPY f.txt ./

### env-and-cmd
ENV A=1 B="two words"
EXPOSE 3000 8080/udp
LABEL org.example.k=v
ENTRYPOINT ["node"]
CMD ["server.js"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s CMD wget -q -O- http://localhost:3000/ || exit 1

### shell-form-cmd
CMD node server.js

### volume-and-user
VOLUME /data
USER node

### add-local-file
ADD f.txt /added/

### add-tar-gz-new-dest
ADD arch.tar.gz /ax/

### add-tar-existing-dest
RUN mkdir /ae && chmod 751 /ae && chown 5:5 /ae
ADD arch.tar /ae/

### add-tar-no-root-entry
RUN mkdir /an && chmod 751 /an
ADD arch-noroot.tar /an/

### add-tar-xz
ADD arch.tar.xz /axz/

### add-tar-chown
ADD --chown=1234:1234 arch.tar.gz /ac/

### add-tar-chmod
ADD --chmod=755 arch.tar.gz /acm/

### add-dir
ADD dir /add-dir/

### link-file
COPY --link f.txt /lf/
#### buildkit
COPY f.txt /lf/

### link-dir-new-dest
COPY --link dir /ld
#### buildkit
COPY dir /ld

### link-from-stage-hardlinks
@SRC
COPY --link --from=src /out/d /lhl/
#### buildkit
@SRC
COPY --from=src /out/d /lhl/

### parents-file
COPY --parents nested/a/b/deep.txt /pr/
#### buildkit
COPY nested/a/b/deep.txt /pr/nested/a/b/

### parents-wildcard
COPY --parents */package.json /pw/
#### buildkit
COPY app/package.json /pw/app/
COPY pkg/package.json /pw/pkg/

### parents-pivot
COPY --parents nested/./a/b/deep.txt /pv/
#### buildkit
COPY nested/a/b/deep.txt /pv/a/b/

### exclude-pattern
# `*.tmp` matches at the top of the source only (the .dockerignore matcher), so sub/c.tmp stays.
COPY --exclude=*.tmp dir /ex/
#### buildkit
COPY dir/.hidden dir/a.txt /ex/
COPY dir/sub /ex/sub/

### exclude-with-chown
COPY --exclude=sub --chown=1234:1234 dir /exc/
#### buildkit
COPY --chown=1234:1234 dir/.hidden dir/a.txt /exc/
