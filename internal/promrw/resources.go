package promrw

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pmetric"
)

type resKey struct{ job, instance string }

type scopeKey struct {
	res           int32
	name, version string
}

type scopeInfoKey struct {
	res           resKey
	name, version string
}

type resState struct {
	key      resKey
	rm       pmetric.ResourceMetrics
	defScope int32
}

// resource returns the index of the resource for (job, instance).
func (b *batch) resource(job, instance string) int32 {
	k := resKey{job, instance}
	if i, ok := b.resIdx[k]; ok {
		return i
	}
	rm := b.out.ResourceMetrics().AppendEmpty()
	attrs := rm.Resource().Attributes()
	if job != "" {
		if ns, name, ok := strings.Cut(job, "/"); ok {
			attrs.PutStr("service.namespace", ns)
			attrs.PutStr("service.name", name)
		} else {
			attrs.PutStr("service.name", job)
		}
	}
	if instance != "" {
		attrs.PutStr("service.instance.id", instance)
	}
	i := int32(len(b.res))
	b.res = append(b.res, resState{key: k, rm: rm, defScope: -1})
	b.resIdx[k] = i
	return i
}

func (b *batch) scope(res int32, name, version string) int32 {
	r := &b.res[res]
	if name == "" && version == "" {
		if r.defScope < 0 {
			r.defScope = b.newScope(r, b.t.opts.ScopeName, b.t.opts.ScopeVersion)
		}
		return r.defScope
	}
	k := scopeKey{res, name, version}
	if i, ok := b.scopeIdx[k]; ok {
		return i
	}
	i := b.newScope(r, name, version)
	b.scopeIdx[k] = i
	return i
}

func (b *batch) newScope(r *resState, name, version string) int32 {
	sm := r.rm.ScopeMetrics().AppendEmpty()
	sm.Scope().SetName(name)
	sm.Scope().SetVersion(version)
	b.scopes = append(b.scopes, sm)
	return int32(len(b.scopes) - 1)
}

// finishResources applies target_info and otel_scope_info labels, from this
// request or remembered from earlier ones, and remembers this request's.
func (b *batch) finishResources() {
	for k, ls := range b.targets {
		b.t.targets.put(k, cloneLabels(ls))
	}
	for i := range b.res {
		r := &b.res[i]
		ls, ok := b.targets[r.key]
		if !ok {
			ls, ok = b.t.targets.get(r.key)
		}
		if !ok {
			continue
		}
		attrs := r.rm.Resource().Attributes()
		for _, l := range ls {
			switch l.Name {
			case labelName, labelJob, labelInstance:
				continue
			}
			if _, exists := attrs.Get(l.Name); !exists {
				attrs.PutStr(l.Name, l.Value)
			}
		}
	}
	for k, ls := range b.scopeAt {
		res, ok := b.resIdx[k.res]
		if !ok {
			continue
		}
		i, ok := b.scopeIdx[scopeKey{res, k.name, k.version}]
		if !ok {
			continue
		}
		attrs := b.scopes[i].Scope().Attributes()
		for _, l := range ls {
			switch l.Name {
			case labelName, labelJob, labelInstance, labelScopeName, labelScopeVer:
				continue
			}
			attrs.PutStr(l.Name, l.Value)
		}
	}
}
