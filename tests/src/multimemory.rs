//! A driver component with two linear memories in its main module, made from the
//! `memory-pair` fixture: no compiler emits a second memory, a hostile vendor's hand-written
//! module can, hoping each memory gets a grant of its own. The rewrite adds a memory to the
//! module that exports `translate`, and has `translate` grow it first by as much as the
//! fixture then takes from its own memory.

use wasm_encoder::reencode::{self, Reencode, ReencodeComponent};
use wasm_encoder::{CodeSection, Instruction, MemorySection, MemoryType};

/// Pages of 64 KiB the second memory grows by: 40 MiB, as the fixture takes from its own.
const PAGES: i32 = 640;

/// Where `translate` is in the module being rewritten.
struct Translate {
    /// Its index among the functions the module defines (imports not counted).
    defined: u32,
}

#[derive(Default)]
struct SecondMemory {
    /// Set while the module that exports `translate` is rewritten.
    target: Option<Translate>,
    /// Function bodies of that module rewritten so far.
    bodies: u32,
}

/// Finds the function exported as `…#translate` in a core module.
fn translate_of(module: &[u8]) -> Option<Translate> {
    let mut imported = 0;
    let mut export = None;
    for payload in wasmparser::Parser::new(0).parse_all(module) {
        match payload.ok()? {
            wasmparser::Payload::ImportSection(section) => {
                for import in section.into_imports() {
                    if matches!(import.ok()?.ty, wasmparser::TypeRef::Func(_)) {
                        imported += 1;
                    }
                }
            }
            wasmparser::Payload::ExportSection(section) => {
                for item in section {
                    let item = item.ok()?;
                    if item.name.ends_with("#translate")
                        && item.kind == wasmparser::ExternalKind::Func
                    {
                        export = Some(item.index);
                    }
                }
            }
            _ => {}
        }
    }
    export.map(|index| Translate {
        defined: index - imported,
    })
}

impl Reencode for SecondMemory {
    type Error = std::convert::Infallible;

    fn parse_memory_section(
        &mut self,
        memories: &mut MemorySection,
        section: wasmparser::MemorySectionReader<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        reencode::utils::parse_memory_section(self, memories, section)?;
        if self.target.is_some() {
            memories.memory(MemoryType {
                minimum: 0,
                maximum: None,
                memory64: false,
                shared: false,
                page_size_log2: None,
            });
        }
        Ok(())
    }

    fn parse_function_body(
        &mut self,
        code: &mut CodeSection,
        body: wasmparser::FunctionBody<'_>,
    ) -> Result<(), reencode::Error<Self::Error>> {
        let index = self.bodies;
        self.bodies += 1;
        if self.target.as_ref().is_none_or(|t| t.defined != index) {
            return reencode::utils::parse_function_body(self, code, body);
        }
        let mut function = self.new_function_with_parsed_locals(&body)?;
        // memory.grow on memory 1; whether it worked is the limiter's business.
        function.instruction(&Instruction::I32Const(PAGES));
        function.instruction(&Instruction::MemoryGrow(1));
        function.instruction(&Instruction::Drop);
        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            function.instruction(&self.parse_instruction(&mut reader)?);
        }
        code.function(&function);
        Ok(())
    }
}

impl ReencodeComponent for SecondMemory {
    fn parse_component_submodule(
        &mut self,
        component: &mut wasm_encoder::Component,
        parser: wasmparser::Parser,
        module: &[u8],
    ) -> Result<(), reencode::Error<Self::Error>> {
        self.target = translate_of(module);
        self.bodies = 0;
        let done =
            reencode::component_utils::parse_component_submodule(self, component, parser, module);
        self.target = None;
        done
    }
}

/// `component` with a second memory in the module that exports `translate`, grown there first.
pub fn with_second_memory(component: &[u8]) -> Vec<u8> {
    let mut rewritten = wasm_encoder::Component::new();
    SecondMemory::default()
        .parse_component(&mut rewritten, wasmparser::Parser::new(0), component)
        .unwrap_or_else(|e| panic!("cannot rewrite the component: {e}"));
    rewritten.finish()
}
